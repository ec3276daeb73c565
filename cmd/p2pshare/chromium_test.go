package main

// Tests in a real headless Chromium (Debian's chromium package), driven
// over the DevTools protocol by chromedp: a video played from the gateway
// and seeked in, and screenshots of a folder listing and of the status
// page. They skip when chromium is not installed (.ci/run installs it).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/time/rate"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/nodetest"
	"github.com/p2pshare/p2pshare/peer/peertest"
)

// browser starts a headless Chromium with a fresh profile, closed when the
// test ends, and returns its context for chromedp.Run.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser test")
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// within runs a with a timeout on the browser's context.
func within[T any](t *testing.T, ctx context.Context, d time.Duration, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// gatewayNode starts a node on a fresh repo (loopback, Bitswap on) and
// serves seed --gateway's handler for it, wrapped by wrap, on a loopback
// server. It returns the node and the server's URL.
func gatewayNode(t *testing.T, wrap func(http.Handler) http.Handler) (*peer.Node, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := nodetest.Start(t, peer.NodeOptions{Bitswap: true})
	h, err := gatewayHandler(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wrap(h))
	t.Cleanup(func() {
		srv.CloseClientConnections() // the browser may still hold a video request open
		srv.Close()
	})
	return n, srv.URL
}

// artifacts is where the browser tests save screenshots:
// $P2PSHARE_ARTIFACTS, else testnet/out/browser (ignored by git, kept by
// CI).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("P2PSHARE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "testnet", "out", "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// rangeLog records the requests for one path and the bytes served for
// them, as the gateway answers. It serves them at the pace of a fast
// network (linkRate), not of loopback: there Chromium would read ahead
// faster than a seek can redirect it, which no real network allows.
type rangeLog struct {
	path   string
	link   *rate.Limiter
	mu     sync.Mutex
	ranges []string // the Range headers, "" for none
	bytes  int64
}

func (l *rangeLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != l.path {
			h.ServeHTTP(w, r)
			return
		}
		l.mu.Lock()
		l.ranges = append(l.ranges, r.Header.Get("Range"))
		l.mu.Unlock()
		h.ServeHTTP(&countingWriter{ResponseWriter: w, l: l}, r)
	})
}

func (l *rangeLog) snapshot() ([]string, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ranges...), l.bytes
}

// countingWriter counts the body bytes written to its client.
type countingWriter struct {
	http.ResponseWriter
	l *rangeLog
}

func (w *countingWriter) Write(b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		k := min(len(b), linkBurst)
		if err := w.l.link.WaitN(context.Background(), k); err != nil {
			return done, err
		}
		n, err := w.ResponseWriter.Write(b[:k])
		done += n
		w.l.mu.Lock()
		w.l.bytes += int64(n)
		w.l.mu.Unlock()
		if err != nil {
			return done, err
		}
		b = b[k:]
	}
	return done, nil
}

// The pace of rangeLog's responses: 8 MB/s (64 Mbit/s), in writes of
// 32 KiB.
const (
	linkRate  = 8 << 20
	linkBurst = 32 << 10
)

func (w *countingWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the server's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// makeVideo writes a 240 s WebM of about 60 MB with ffmpeg: 10 s of
// noise (VP8 at 2 Mbit/s, a keyframe each second) encoded once, then
// repeated without re-encoding, with the index (Cues) at the front, as
// files made for the web have it: without it a player finds a time only by
// reading up to it. Chromium buffers about ten seconds ahead of where it
// plays, so the file must be long for a seek to skip much.
func makeVideo(t *testing.T, path string) {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg is not installed (apt-get install ffmpeg): cannot make the test video")
	}
	clip := filepath.Join(t.TempDir(), "clip.webm")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25,noise=alls=40:allf=t", "-t", "10",
			"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16",
			"-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M", "-g", "25", "-f", "webm", clip},
		{"-stream_loop", "23", "-i", clip, "-c", "copy", "-cues_to_front", "1", "-f", "webm", path},
	} {
		if out, err := exec.Command(ff, append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %q: %v\n%s", args, err, out)
		}
	}
}

// videoState is what the page reports once it has seeked and played.
type videoState struct {
	Duration float64 `json:"duration"`
	Time     float64 `json:"time"`
	Frames   int     `json:"frames"`
	Error    string  `json:"error"`
}

// TestChromiumVideoSeek: Chromium plays a video from the gateway and seeks
// to its middle; the gateway served a range starting near the middle, and
// far less than the whole file.
func TestChromiumVideoSeek(t *testing.T) {
	ctx := browser(t)
	video := filepath.Join(t.TempDir(), "film.webm")
	makeVideo(t, video)
	fi, err := os.Stat(video)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()

	log := &rangeLog{link: rate.NewLimiter(linkRate, linkBurst)}
	var videoURL string
	n, base := gatewayNode(t, func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/", log.wrap(h))
		mux.HandleFunc("/test/video.html", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><video id="v" src="%s" muted preload="metadata" width="320" height="240"></video>`, videoURL)
		})
		return mux
	})
	res, err := n.Add(context.Background(), video, peer.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log.path = "/ipfs/" + res.CID.String()
	videoURL = log.path

	within(t, ctx, 30*time.Second, chromedp.Navigate(base+"/test/video.html"))
	st := within(t, ctx, 60*time.Second, chromedp.Evaluate[videoState](`(async () => {
		const v = document.getElementById('v');
		const failed = new Promise((_, fail) => v.addEventListener('error', () => fail(new Error('media error ' + v.error.code + ' ' + v.error.message))));
		const event = name => Promise.race([new Promise(ok => v.addEventListener(name, ok, {once: true})), failed]);
		try {
			if (v.readyState < 1) await event('loadedmetadata');
			v.currentTime = v.duration / 2;
			await event('seeked');
			const playing = event('playing');
			await v.play();
			await playing;
			await new Promise(ok => setTimeout(ok, 500));
			v.pause();
			return {duration: v.duration, time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames};
		} catch (e) {
			return {error: String(e)};
		}
	})()`, chromedp.EvalAwaitPromise))
	if st.Error != "" {
		t.Fatalf("the video did not play: %s", st.Error)
	}
	if st.Duration < 239 || st.Time < st.Duration/2 || st.Frames == 0 {
		t.Fatalf("video state %+v: want a 240 s video playing from its middle", st)
	}
	// The browser keeps a request open to buffer ahead: wait until it has
	// what it wants and the bytes served stop growing.
	ranges, served := log.snapshot()
	for range 10 {
		time.Sleep(time.Second)
		r, b := log.snapshot()
		if b == served {
			break
		}
		ranges, served = r, b
	}
	t.Logf("video of %d bytes: %d bytes served, ranges %q; playing at %.1f s of %.1f s, %d frames",
		size, served, ranges, st.Time, st.Duration, st.Frames)
	if served > size/3 {
		t.Errorf("the gateway served %d of %d bytes for a seek to the middle, want under a third", served, size)
	}
	middle := false
	for _, r := range ranges {
		start, ok := rangeStart(r)
		if ok && start > size*2/5 && start < size*3/5 {
			middle = true
		}
	}
	if !middle {
		t.Errorf("no request for a range starting near the middle (%d): %q", size/2, ranges)
	}
}

// rangeStart parses the first position of a "bytes=START-[END]" header.
func rangeStart(h string) (int64, bool) {
	s, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, false
	}
	s, _, _ = strings.Cut(s, "-")
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// TestChromiumScreenshots: Chromium shows a shared folder's listing with its
// file names, and the status page with the connected peer and the rate
// chart; both are saved as screenshots.
func TestChromiumScreenshots(t *testing.T) {
	ctx := browser(t)
	out := artifacts(t)
	n, base := gatewayNode(t, func(h http.Handler) http.Handler { return h })

	dir := filepath.Join(t.TempDir(), "holiday")
	names := []string{"notes.txt", "a & b <c>.txt", "film.bin"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names[:2] {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("hello "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRandom(t, filepath.Join(dir, names[2]), 6<<20)
	res, err := n.Add(context.Background(), dir, peer.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}

	within(t, ctx, 30*time.Second, chromedp.Navigate(base+"/ipfs/"+res.CID.String()+"/"))
	links := within(t, ctx, 10*time.Second, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('a')).map(a => a.textContent.trim())`))
	for _, name := range names {
		if !slices.Contains(links, name) {
			t.Errorf("the listing lacks %q (links: %q)", name, links)
		}
	}
	shot(t, ctx, filepath.Join(out, "listing.png"))

	// An IPFS node fetches the folder by Bitswap: a peer, and traffic for
	// the chart.
	client := peertest.NewIPFSClient(t, peertest.Info(n.Host))
	gctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := client.Get(gctx, res.CID, filepath.Join(t.TempDir(), "copy")); err != nil {
		t.Fatal(err)
	}
	// libp2p's traffic totals are brought up to date once a second, and
	// the chart samples them once a second: the upload shows within about
	// two seconds of its end. The page is loaded again until it does.
	var page statusDOM
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		page = statusPage(t, ctx, base)
		if page.risen() || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(page.Peers, client.Host.ID().String()) {
		t.Errorf("the status page's peers lack the IPFS client %s: %q", client.Host.ID(), page.Peers)
	}
	if !strings.Contains(page.Roots, "holiday") || !strings.Contains(page.Roots, "complete") {
		t.Errorf("the status page's roots lack the complete folder: %q", page.Roots)
	}
	if page.Charts != 2 || !page.risen() {
		t.Errorf("the rate chart has %d lines, its scale is %q and its upload line peaks at y=%v; want 2 lines and the upload of 6 MiB at the top of a scale in MiB/s", page.Charts, page.Top, page.UpTop)
	}
	shot(t, ctx, filepath.Join(out, "status.png"))
}

// statusPage loads the status page and reads what it shows.
func statusPage(t *testing.T, ctx context.Context, base string) statusDOM {
	t.Helper()
	within(t, ctx, 30*time.Second, chromedp.Navigate(base+"/"))
	return within(t, ctx, 10*time.Second, chromedp.Evaluate[statusDOM](`(() => {
		const up = document.querySelector('svg#rates polyline.up');
		const ys = up ? up.getAttribute('points').trim().split(/\s+/).map(p => Number(p.split(',')[1])) : [];
		return {
			peers: document.getElementById('peers').textContent,
			roots: document.getElementById('roots').textContent,
			charts: document.querySelectorAll('svg#rates polyline').length,
			top: document.querySelector('svg#rates text').textContent,
			upTop: ys.length ? Math.min(...ys) : -1,
		};
	})()`))
}

// statusDOM is what the status page shows, read from its DOM.
type statusDOM struct {
	Peers  string  `json:"peers"`
	Roots  string  `json:"roots"`
	Charts int     `json:"charts"`
	UpTop  float64 `json:"upTop"` // the upload line's highest point (smallest y)
	Top    string  `json:"top"`   // the rate at the chart's top
}

// risen reports whether the chart shows a fast upload as its peak: its
// scale is in MiB/s and the upload line reaches the top.
func (p statusDOM) risen() bool {
	return strings.HasSuffix(p.Top, "MiB/s") && p.UpTop >= 0 && p.UpTop < 1
}

// shot saves a screenshot of the whole page as a PNG.
func shot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png := within(t, ctx, 30*time.Second, chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
