package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
)

// The local API's CAR endpoints:
//
//	POST /v1/export {"cid": ...}   the CAR itself (application/vnd.ipld.car),
//	                               or a JSON error event if nothing was
//	                               written yet; an error after the first
//	                               byte comes in the P2pshare-Error trailer,
//	                               the block count in P2pshare-Blocks
//	POST /v1/import {"path": ...}  a JSON result or error event (the seed
//	                               reads the file itself, as add does)

const (
	carContentType     = "application/vnd.ipld.car"
	exportErrorTrailer = "P2pshare-Error"
	exportBlockTrailer = "P2pshare-Blocks"
)

type exportRequest struct {
	CID string `json:"cid"`
}

type importRequest struct {
	Path string `json:"path"`
}

// Import imports the CAR at path (see Repo.Import) and provides its roots.
func (n *Node) Import(ctx context.Context, path string) (ImportResult, error) {
	res, err := n.Repo.Import(ctx, path)
	if err != nil {
		return res, err
	}
	for _, r := range res.Roots {
		c, err := cid.Decode(r.CID)
		if err != nil {
			return res, fmt.Errorf("bug: imported root %q: %v", r.CID, err)
		}
		n.Repo.store().forget(c)
		n.provide(c)
	}
	return res, nil
}

// carRoutes adds the CAR endpoints to the local API.
func (n *Node) carRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/export", n.apiExport)
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var req importRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(w, nil, &APIError{Message: "bad request: " + err.Error(), Usage: true})
			return
		}
		res, err := n.Import(r.Context(), req.Path)
		reply(w, res, err)
	})
}

func (n *Node) apiExport(w http.ResponseWriter, r *http.Request) {
	var req exportRequest
	c, ok := decodeCIDRequest(w, r, &req, func() string { return req.CID })
	if !ok {
		return
	}
	w.Header().Set("Trailer", exportErrorTrailer+", "+exportBlockTrailer)
	lw := &lazyCARWriter{w: w}
	st, err := n.Repo.Export(r.Context(), c, lw)
	if err != nil && !lw.started {
		reply(w, nil, err)
		return
	}
	if err != nil {
		w.Header().Set(exportErrorTrailer, strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	w.Header().Set(exportBlockTrailer, strconv.Itoa(st.Blocks))
}

// lazyCARWriter sends the CAR's response header with its first byte, so
// that an error before it can still be a JSON error reply.
type lazyCARWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyCARWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", carContentType)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// Export asks the seed for the CAR of root and copies it to w.
func (c *Client) Export(ctx context.Context, root cid.Cid, w io.Writer) (ExportStats, error) {
	body, err := json.Marshal(exportRequest{CID: root.String()})
	if err != nil {
		return ExportStats{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://p2pshare/v1/export", strings.NewReader(string(body)))
	if err != nil {
		return ExportStats{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return ExportStats{}, fmt.Errorf("talking to the seed node: %w", err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != carContentType {
		var ev apiEvent
		if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.APIError == nil {
			return ExportStats{}, fmt.Errorf("seed node sent a bad reply (%s)", resp.Status)
		}
		return ExportStats{}, ev.APIError
	}
	nb, err := io.Copy(w, resp.Body)
	st := ExportStats{Bytes: nb}
	if err != nil {
		return st, fmt.Errorf("exporting %s: %w", root, err)
	}
	if msg := resp.Trailer.Get(exportErrorTrailer); msg != "" {
		return st, &APIError{Message: msg}
	}
	blocks := resp.Trailer.Get(exportBlockTrailer)
	if blocks == "" {
		return st, fmt.Errorf("exporting %s: the seed node ended the CAR without saying it was complete", root)
	}
	st.Blocks, _ = strconv.Atoi(blocks)
	return st, nil
}

// Import asks the seed to import the CAR at path (made absolute here, as
// the seed's working folder differs).
func (c *Client) Import(ctx context.Context, path string) (ImportResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ImportResult{}, err
	}
	var res ImportResult
	return res, c.call(ctx, "POST", "/v1/import", importRequest{Path: abs}, &res, nil)
}
