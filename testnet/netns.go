package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// netns builds the namespaced network: one namespace holding a bridge, and
// one namespace per peer joined to it by a veth pair, with an address in
// 10.77.0.0/16 that exists only inside these namespaces.
type netns struct {
	prefix string
	mu     sync.Mutex
	made   []string // namespaces to delete
	n      int
	sysctl map[string]string // kernel settings changed, to restore
}

// neighLimits raise the kernel's neighbour (ARP) table thresholds for the
// run. They are global to all namespaces, and a full mesh of n peers needs
// n² entries: past the default 1024 (about 33 peers) new entries are
// refused and a new peer's packets never leave its namespace.
var neighLimits = map[string]string{
	"/proc/sys/net/ipv4/neigh/default/gc_thresh1": "8192",
	"/proc/sys/net/ipv4/neigh/default/gc_thresh2": "16384",
	"/proc/sys/net/ipv4/neigh/default/gc_thresh3": "32768",
}

func (n *netns) bridgeNS() string { return n.prefix + "-br" }

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsUnavailable says why netns mode cannot run here, or "".
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed (Debian: iproute2)"
		}
	}
	name := fmt.Sprintf("p2pscheck%d", os.Getpid())
	if err := sh("ip", "netns", "add", name); err != nil {
		return "ip netns add failed: " + err.Error()
	}
	sh("ip", "netns", "del", name)
	return ""
}

func (n *netns) setup() error {
	n.sysctl = map[string]string{}
	for path, v := range neighLimits {
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("raising %s: %w", path, err)
		}
		n.sysctl[path] = strings.TrimSpace(string(old))
	}
	br := n.bridgeNS()
	if err := sh("ip", "netns", "add", br); err != nil {
		return err
	}
	n.made = append(n.made, br)
	for _, c := range [][]string{
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", br, "link", "set", "br0", "up"},
		{"ip", "-n", br, "link", "set", "lo", "up"},
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	return nil
}

// addPeer makes a namespace for a peer and returns its name and address.
// capMbit > 0 caps its upload with tc tbf on its interface.
func (n *netns) addPeer(capMbit int) (string, string, error) {
	var ip string
	ns, err := n.addOnBridge(func(i int) string {
		ip = fmt.Sprintf("10.77.%d.%d", i/250, i%250+1)
		return ip + "/16"
	}, capMbit)
	return ns, ip, err
}

// newName numbers and names a new namespace, recorded for cleanup.
func (n *netns) newName() (string, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n++
	ns := fmt.Sprintf("%s-%d", n.prefix, n.n)
	n.made = append(n.made, ns)
	return ns, n.n
}

// addOnBridge makes a namespace joined to the bridge by a veth pair, its
// end eth0 with the address cidr gives for the namespace's number, and
// returns its name. capMbit > 0 caps its upload with tc tbf.
func (n *netns) addOnBridge(cidr func(i int) string, capMbit int) (string, error) {
	ns, i := n.newName()
	host := fmt.Sprintf("%sh%d", n.prefix, i)
	peerSide := fmt.Sprintf("%sp%d", n.prefix, i)
	br := n.bridgeNS()
	cmds := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", host, "type", "veth", "peer", "name", peerSide},
		{"ip", "link", "set", host, "netns", br},
		{"ip", "-n", br, "link", "set", host, "master", "br0"},
		{"ip", "-n", br, "link", "set", host, "up"},
		{"ip", "link", "set", peerSide, "netns", ns},
		{"ip", "-n", ns, "link", "set", peerSide, "name", "eth0"},
		{"ip", "-n", ns, "addr", "add", cidr(i), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	}
	if capMbit > 0 {
		cmds = append(cmds, tbf(ns, "eth0", capMbit))
	}
	for _, c := range cmds {
		if err := sh(c...); err != nil {
			return "", err
		}
	}
	return ns, nil
}

// tbf is the command capping a namespace's upload on dev at capMbit: the
// rate is the cap, with a 50 ms queue. The burst, 256 KiB (20 ms at 100
// Mbit/s), lets the kernel's 64 KiB GSO packets through whole: with a
// smaller one tbf cuts each into 1500-byte packets, and on two cores the
// crowd scenarios then measure the kernel, not p2pshare.
func tbf(ns, dev string, capMbit int) []string {
	return []string{"ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
		"rate", fmt.Sprintf("%dmbit", capMbit), "burst", "256kb", "latency", "50ms"}
}

// natKind is how a NAT router maps its LAN's connections.
type natKind string

const (
	// natCone is plain masquerade: a LAN port keeps its port on the WAN
	// address where it can (endpoint-independent mapping), so the
	// address a peer sees is the one a hole punch reaches.
	natCone natKind = "masquerade"
	// natSymmetric picks a random WAN port for every connection
	// (masquerade fully-random): the address a peer sees is never the one
	// a hole punch would need, so hole punching cannot work.
	natSymmetric natKind = "masquerade fully-random"
)

// addNAT makes a home network behind a NAT router: a router namespace on
// the bridge with address wan (its WAN side, eth0), and a peer namespace
// behind it on LAN 192.168.lan.0/24 whose default route is the router.
// The router masquerades what leaves eth0 as kind says, and drops what
// arrives there unasked (as home routers do: no port is open). It
// returns the peer's namespace and address; capMbit > 0 caps the peer's
// upload.
func (n *netns) addNAT(wan string, lan int, kind natKind, capMbit int) (string, string, error) {
	router, err := n.addOnBridge(func(int) string { return wan }, 0)
	if err != nil {
		return "", "", err
	}
	ns, i := n.newName()
	ip := fmt.Sprintf("192.168.%d.2", lan)
	gw := fmt.Sprintf("192.168.%d.1", lan)
	rSide, pSide := fmt.Sprintf("%sr%d", n.prefix, i), fmt.Sprintf("%sp%d", n.prefix, i)
	rules := fmt.Sprintf(`table ip nat {
	chain masq { type nat hook postrouting priority srcnat; oifname "eth0" %s; }
}
table inet fw {
	chain wan_in { type filter hook input priority filter; iifname "eth0" ct state new drop; }
	chain wan_fwd { type filter hook forward priority filter; iifname "eth0" ct state new drop; }
}
`, kind)
	cmds := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", rSide, "type", "veth", "peer", "name", pSide},
		{"ip", "link", "set", rSide, "netns", router},
		{"ip", "-n", router, "link", "set", rSide, "name", "lan0"},
		{"ip", "-n", router, "addr", "add", gw + "/24", "dev", "lan0"},
		{"ip", "-n", router, "link", "set", "lan0", "up"},
		{"ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "link", "set", pSide, "netns", ns},
		{"ip", "-n", ns, "link", "set", pSide, "name", "eth0"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", gw},
	}
	if capMbit > 0 {
		cmds = append(cmds, tbf(ns, "eth0", capMbit))
	}
	for _, c := range cmds {
		if err := sh(c...); err != nil {
			return "", "", err
		}
	}
	c := exec.Command("ip", "netns", "exec", router, "nft", "-f", "-")
	c.Stdin = strings.NewReader(rules)
	if out, err := c.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("nft in %s: %v: %s", router, err, strings.TrimSpace(string(out)))
	}
	return ns, ip, nil
}

// teardown deletes every namespace made (their veths and qdiscs go with
// them) and restores the kernel settings it changed.
func (n *netns) teardown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.made) - 1; i >= 0; i-- {
		sh("ip", "netns", "del", n.made[i])
	}
	n.made = nil
	for _, k := range []string{"gc_thresh1", "gc_thresh2", "gc_thresh3"} {
		path := "/proc/sys/net/ipv4/neigh/default/" + k
		if old, ok := n.sysctl[path]; ok {
			os.WriteFile(path, []byte(old), 0o644)
		}
	}
	n.sysctl = nil
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
