package peer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

// The local API: HTTP over a unix socket in the repo (mode 0600, in the
// repo folder of mode 0700), through
// which the CLI reaches a running seed node. Long operations (add, get)
// answer with one JSON event per line: progress events, then a final
// "result" or "error" event.

// APIError is an error reported by the seed node over the local API.
type APIError struct {
	Message string `json:"message"`
	// Usage is true when the request itself was wrong (exit status 2).
	Usage bool `json:"usage,omitempty"`
}

// Error returns the seed's message.
func (e *APIError) Error() string { return e.Message }

// IsUsage reports whether err means the command was wrong (a missing path,
// an unsupported file type, a bad option) rather than that it failed.
func IsUsage(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Usage
	}
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, chunker.ErrUnsupportedFile) || errors.Is(err, ErrBadOptions) ||
		errors.Is(err, ErrBadSwarmKey) || errors.Is(err, ErrNoTCPListen) || errors.Is(err, ErrBadTicket)
}

type apiEvent struct {
	Type     string       `json:"type"` // "progress", "result", "error"
	Bytes    int64        `json:"bytes,omitempty"`
	Get      *GetProgress `json:"get,omitempty"`
	Result   any          `json:"result,omitempty"`
	APIError *APIError    `json:"error,omitempty"`
}

type addRequest struct {
	Path    string     `json:"path"`
	Options AddOptions `json:"options"`
}

type getRequest struct {
	CID     string        `json:"cid"`
	Options GetOptions    `json:"options"`
	Timeout time.Duration `json:"timeout"`
}

type rmRequest struct {
	CID string `json:"cid"`
}

type ticketRequest struct {
	CID string `json:"cid"`
}

type ticketReply struct {
	Ticket string `json:"ticket"`
}

// ServeAPI serves the local API for n on the repo's socket until ctx ends.
func (n *Node) ServeAPI(ctx context.Context) error {
	path := n.Repo.APISocket()
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("a seed node already serves %s", path)
	}
	// Whoever can connect to the socket commands the node. The socket is
	// created inside the repo folder, which is the owner's alone (0700)
	// before it appears, so there is no moment at which another user can
	// reach it; it is then made 0600 as well. (Setting the umask around
	// Listen would do too, but the umask is process-wide.)
	if err := tighten(n.Repo.Dir); err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("local API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/add", n.apiAdd)
	mux.HandleFunc("POST /v1/get", n.apiGet)
	mux.HandleFunc("POST /v1/rm", n.apiRm)
	mux.HandleFunc("POST /v1/ticket", n.apiTicket)
	n.carRoutes(mux)
	mux.HandleFunc("GET /v1/ls", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.Repo.List(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.Status(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		reply(w, n.Peers(r.Context()), nil)
	})
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx }}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	err = srv.Serve(l)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func apiErr(err error) *APIError { return &APIError{Message: err.Error(), Usage: IsUsage(err)} }

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(apiEvent{Type: "error", APIError: apiErr(err)})
		return
	}
	json.NewEncoder(w).Encode(apiEvent{Type: "result", Result: v})
}

// eventWriter streams events to the client, flushing each line.
type eventWriter struct {
	w   http.ResponseWriter
	enc *json.Encoder
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	w.Header().Set("Content-Type", "application/x-ndjson")
	return &eventWriter{w: w, enc: json.NewEncoder(w)}
}

func (e *eventWriter) send(ev apiEvent) {
	e.enc.Encode(ev)
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *eventWriter) end(v any, err error) {
	if err != nil {
		e.send(apiEvent{Type: "error", APIError: apiErr(err)})
		return
	}
	e.send(apiEvent{Type: "result", Result: v})
}

func (n *Node) apiAdd(w http.ResponseWriter, r *http.Request) {
	var req addRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, nil, &APIError{Message: "bad request: " + err.Error(), Usage: true})
		return
	}
	ew := newEventWriter(w)
	last := time.Now()
	req.Options.Progress = func(b int64) {
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			ew.send(apiEvent{Type: "progress", Bytes: b})
		}
	}
	res, err := n.Add(r.Context(), req.Path, req.Options)
	ew.end(res, err)
}

// decodeCIDRequest decodes a request body into req and parses the CID it
// names; on failure it has answered with a usage error.
func decodeCIDRequest(w http.ResponseWriter, r *http.Request, req any, cidOf func() string) (cid.Cid, bool) {
	if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		reply(w, nil, &APIError{Message: "bad request: " + err.Error(), Usage: true})
		return cid.Undef, false
	}
	c, err := cid.Decode(cidOf())
	if err != nil {
		reply(w, nil, &APIError{Message: fmt.Sprintf("malformed CID %q", cidOf()), Usage: true})
		return cid.Undef, false
	}
	return c, true
}

func (n *Node) apiGet(w http.ResponseWriter, r *http.Request) {
	var req getRequest
	c, ok := decodeCIDRequest(w, r, &req, func() string { return req.CID })
	if !ok {
		return
	}
	ew := newEventWriter(w)
	req.Options.Progress = func(p GetProgress) { ew.send(apiEvent{Type: "progress", Get: &p}) }
	res, err := n.Get(r.Context(), c, req.Options)
	ew.end(res, err)
}

func (n *Node) apiRm(w http.ResponseWriter, r *http.Request) {
	var req rmRequest
	c, ok := decodeCIDRequest(w, r, &req, func() string { return req.CID })
	if !ok {
		return
	}
	reply(w, struct{}{}, n.Remove(r.Context(), c))
}

func (n *Node) apiTicket(w http.ResponseWriter, r *http.Request) {
	var req ticketRequest
	c, ok := decodeCIDRequest(w, r, &req, func() string { return req.CID })
	if !ok {
		return
	}
	t, err := n.Ticket(r.Context(), c)
	if err != nil {
		reply(w, nil, err)
		return
	}
	s, err := t.Encode()
	reply(w, ticketReply{Ticket: s}, err)
}

// Client talks to a running seed node over its local API.
type Client struct {
	hc *http.Client
}

// Dial returns a client for the seed node serving the repo in dir, or
// an error if none is running.
func Dial(dir string) (*Client, error) {
	path := APISocket(dir)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, err
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}}, nil
}

// call sends a request and decodes the event stream, handing progress
// events to onEvent and the result to out.
func (c *Client) call(ctx context.Context, method, path string, body any, out any, onEvent func(apiEvent)) error {
	var rd io.Reader
	if body != nil {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(json.NewEncoder(pw).Encode(body)) }()
		rd = pr
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://p2pshare"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("talking to the seed node: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var ev struct {
			apiEvent
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("seed node sent a bad reply: %w", err)
		}
		switch ev.Type {
		case "error":
			return ev.APIError
		case "result":
			if out != nil {
				return json.Unmarshal(ev.Result, out)
			}
			return nil
		default:
			if onEvent != nil {
				onEvent(ev.apiEvent)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading from the seed node: %w", err)
	}
	return errors.New("the seed node closed the connection before answering")
}

// Add asks the seed to add path (made absolute here, as the seed's working
// folder differs).
func (c *Client) Add(ctx context.Context, path string, opts AddOptions) (AddResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return AddResult{}, err
	}
	progress := opts.Progress
	opts.Progress = nil
	var res AddResult
	err = c.call(ctx, "POST", "/v1/add", addRequest{Path: abs, Options: opts}, &res, func(ev apiEvent) {
		if progress != nil && ev.Type == "progress" {
			progress(ev.Bytes)
		}
	})
	return res, err
}

// Get asks the seed to download root (or opts.Path in it).
func (c *Client) Get(ctx context.Context, root cid.Cid, opts GetOptions) (GetResult, error) {
	if opts.Out == "" {
		elems, err := chunker.SplitPath(opts.Path)
		if err != nil {
			return GetResult{}, fmt.Errorf("%w: path %q: %w", ErrBadOptions, opts.Path, err)
		}
		opts.Out = defaultOut(root, elems)
	}
	abs, err := filepath.Abs(opts.Out)
	if err != nil {
		return GetResult{}, err
	}
	opts.Out = abs
	progress := opts.Progress
	opts.Progress = nil
	var res GetResult
	err = c.call(ctx, "POST", "/v1/get", getRequest{CID: root.String(), Options: opts}, &res, func(ev apiEvent) {
		if progress != nil && ev.Get != nil {
			progress(*ev.Get)
		}
	})
	return res, err
}

// List asks the seed for its roots.
func (c *Client) List(ctx context.Context) ([]RootInfo, error) {
	var res []RootInfo
	return res, c.call(ctx, "GET", "/v1/ls", nil, &res, nil)
}

// Remove asks the seed to stop sharing root.
func (c *Client) Remove(ctx context.Context, root cid.Cid) error {
	return c.call(ctx, "POST", "/v1/rm", rmRequest{CID: root.String()}, nil, nil)
}

// Ticket asks the seed for a ticket for root that names the seed.
func (c *Client) Ticket(ctx context.Context, root cid.Cid) (Ticket, error) {
	var res ticketReply
	if err := c.call(ctx, "POST", "/v1/ticket", ticketRequest{CID: root.String()}, &res, nil); err != nil {
		return Ticket{}, err
	}
	t, err := ParseTicket(res.Ticket)
	if err != nil {
		return Ticket{}, fmt.Errorf("the seed node sent a bad ticket: %v", err)
	}
	return t, nil
}

// Status asks the seed for its status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var res Status
	return res, c.call(ctx, "GET", "/v1/status", nil, &res, nil)
}

// Peers asks the seed for its connected peers.
func (c *Client) Peers(ctx context.Context) ([]PeerInfo, error) {
	var res []PeerInfo
	return res, c.call(ctx, "GET", "/v1/peers", nil, &res, nil)
}
