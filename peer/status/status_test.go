package status

import (
	"context"
	"math/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/nodetest"
	"github.com/p2pshare/p2pshare/peer/peertest"
)

// fetch returns the HTML page at url; anything else ends the test.
func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, b := peertest.HTTPGet(t, url, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// hostileName is a file name a peer may announce: it must reach the page
// as text, not markup.
const hostileName = `<img src=x onerror=alert(1)>.bin`

// TestStatusPage: a downloader's page, while it downloads from a seed,
// shows the seed as a peer, the download with its progress and rate, the
// partial root, and a chart whose download line has risen; the seed's page
// shows its complete root. Names are escaped.
func TestStatusPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seed := nodetest.Start(t, peer.NodeOptions{})
	path := filepath.Join(t.TempDir(), hostileName)
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(5)).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := seed.Add(ctx, path, peer.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seedInfo := libp2ppeer.AddrInfo{ID: seed.Host.ID(), Addrs: seed.Host.Addrs()}
	// 2 MiB/s: the 8 MiB download lasts about four seconds.
	dl := nodetest.Start(t, peer.NodeOptions{MaxDownload: 2 << 20, Bootstrap: []libp2ppeer.AddrInfo{seedInfo}})
	got := make(chan error, 1)
	go func() {
		_, err := dl.Get(ctx, res.CID, peer.GetOptions{Out: filepath.Join(t.TempDir(), hostileName), Peers: []libp2ppeer.AddrInfo{seedInfo}})
		got <- err
	}()
	page := httptest.NewServer(New(ctx, dl))
	defer page.Close()

	// Two seconds in, the chart has samples of the download.
	deadline := time.Now().Add(20 * time.Second)
	for len(dl.Transfers()) == 0 || dl.Transfers()[0].BytesDone == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the download never showed progress")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond)
	body := fetch(t, page.URL)

	escaped := `&lt;img src=x onerror=alert(1)&gt;.bin`
	for _, want := range []string{
		dl.Host.ID().String(), seed.Host.ID().String(), // the node, its peer
		"outbound", `id="transfers"`, escaped, res.CID.String(), "partial", `<svg id="rates"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the downloader's page lacks %q", want)
		}
	}
	if strings.Contains(body, "<img") {
		t.Error("a file name reached the page as markup")
	}
	m := regexp.MustCompile(`id="transfers">\s*<tr>.*\n<tr><td>[^<]*</td><td><code>[^<]*</code></td><td class="n">([0-9.]+ [KMG]?i?B)</td>.*<td class="n">([0-9.]+ [KMG]?i?B)/s</td></tr>`).FindStringSubmatch(body)
	if m == nil || m[1] == "0 B" || m[2] == "0 B" {
		t.Errorf("the transfer row shows no progress or no rate: %q", m)
	}
	if top := maxY(t, body, "down"); top >= chartH {
		t.Errorf("the download line stays at the bottom (highest point y=%.1f)", top)
	}

	if err := <-got; err != nil {
		t.Fatal(err)
	}
	seedPage := httptest.NewServer(New(ctx, seed))
	defer seedPage.Close()
	body = fetch(t, seedPage.URL)
	for _, want := range []string{escaped, "complete", dl.Host.ID().String(), "inbound", "no downloads running"} {
		if !strings.Contains(body, want) {
			t.Errorf("the seed's page lacks %q", want)
		}
	}
}

// maxY returns the smallest y (the highest point) of the chart's line of
// the given class.
func maxY(t *testing.T, body, class string) float64 {
	t.Helper()
	m := regexp.MustCompile(`class="` + class + `"[^>]*points="([^"]*)"`).FindStringSubmatch(body)
	if m == nil || m[1] == "" {
		t.Fatalf("no %s line in the chart", class)
	}
	top := float64(chartH)
	for _, pt := range strings.Fields(m[1]) {
		_, y, _ := strings.Cut(pt, ",")
		v, err := strconv.ParseFloat(y, 64)
		if err != nil {
			t.Fatalf("bad point %q", pt)
		}
		top = min(top, v)
	}
	return top
}

// TestRing: the history keeps the last HistoryLen samples, oldest first.
func TestRing(t *testing.T) {
	var r ring
	for i := range HistoryLen + 5 {
		r.add(Sample{Up: float64(i)})
	}
	s := r.samples()
	if len(s) != HistoryLen || s[0].Up != 5 || s[len(s)-1].Up != HistoryLen+4 {
		t.Fatalf("got %d samples from %v to %v", len(s), s[0].Up, s[len(s)-1].Up)
	}
}
