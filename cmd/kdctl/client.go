package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds what kdctl reads of an answer; a longer answer is an
// error rather than silently cut.
const maxResponse = 64 << 20

// Media types kdctl sends and expects.
const (
	mediaJSON    = "application/json"
	mediaProblem = "application/problem+json"
	mediaCPIX    = "application/cpix+xml"
)

// client calls the admin API with one credential.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
	// retries is how often a request is sent again (see send); notes gets
	// a line per retry (nil: none).
	retries int
	notes   io.Writer
}

// defaultRetries is how often kdctl sends a request again by default
// ($KD_RETRIES overrides it).
const defaultRetries = 5

func newClient(base *url.URL, token string, timeout time.Duration) *client {
	return &client{
		base:    base,
		token:   token,
		retries: defaultRetries,
		http: &http.Client{
			Timeout: timeout,
			// The admin API never redirects; following one could carry
			// the credential somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// problem is the admin API's RFC 9457 error body.
type problem struct {
	Status    int    `json:"status"`
	Title     string `json:"title"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Reason    string `json:"reason"`
	KID       string `json:"kid"`
	RequestID string `json:"request_id"`
	// Problems names each bad entry of a refused import.
	Problems []entryProblem `json:"problems"`
	// Conflicts names the KIDs an import found stored with another key;
	// Results is the outcome of every entry of that import.
	Conflicts []string        `json:"conflicts"`
	Results   json.RawMessage `json:"results"`
}

// entryProblem is one bad entry of a refused import: Index is its 0-based
// position in the batch, or -1 for the document as a whole.
type entryProblem struct {
	Index  int    `json:"index"`
	KID    string `json:"kid"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (p entryProblem) String() string {
	var b strings.Builder
	if p.Index < 0 {
		b.WriteString("document")
	} else {
		fmt.Fprintf(&b, "entry %d", p.Index)
	}
	if p.KID != "" {
		fmt.Fprintf(&b, " (kid %s)", p.KID)
	}
	b.WriteString(": " + p.Reason)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// serverError is a non-2xx answer.
type serverError struct {
	status int
	p      problem
	raw    string // a short excerpt when the body is not a problem
	text   string // a plain-text refusal (SPEKE)
	// retryAfter is the answer's Retry-After.
	retryAfter time.Duration
	// command and role, set on a 403, name the command and the role it
	// needs (from the command table).
	command, role string
}

func (e *serverError) Error() string {
	var b strings.Builder
	if e.status >= 500 {
		fmt.Fprintf(&b, "server error: %d", e.status)
	} else {
		fmt.Fprintf(&b, "server refused: %d", e.status)
	}
	if e.text != "" {
		fmt.Fprintf(&b, " %s: %s", http.StatusText(e.status), e.text)
		return b.String()
	}
	if e.p.Code == "" {
		fmt.Fprintf(&b, " %s", http.StatusText(e.status))
		if e.raw != "" {
			fmt.Fprintf(&b, ": %q (not an admin API answer; is --server right?)", e.raw)
		}
		return b.String()
	}
	b.WriteString(" " + e.p.Code)
	if e.p.Reason != "" {
		b.WriteString("/" + e.p.Reason)
	}
	if e.p.Detail != "" {
		b.WriteString(": " + e.p.Detail)
	}
	if e.p.RequestID != "" {
		b.WriteString(" (request_id " + e.p.RequestID + ")")
	}
	return b.String()
}

// details are the lines that follow the error's own: each bad entry of a
// refused import, and each KID an import found in conflict.
func (e *serverError) details() []string {
	var lines []string
	if e.status == http.StatusForbidden && e.role != "" {
		lines = append(lines, fmt.Sprintf("%s needs a credential of role %s", e.command, roleText(e.role)))
	}
	for _, p := range e.p.Problems {
		lines = append(lines, p.String())
	}
	var results []importResult
	_ = json.Unmarshal(e.p.Results, &results)
	kind := map[string]string{}
	for _, r := range results {
		kind[r.ID] = r.Conflict
	}
	for _, kid := range e.p.Conflicts {
		if kind[kid] == "type" {
			lines = append(lines, "conflict: "+kid+" is stored with the same key but another content key type, which never changes; import it with the stored type (kdctl keys get "+kid+")")
			continue
		}
		lines = append(lines, "conflict: "+kid+" is stored with a different key; the stored key was left untouched")
	}
	return lines
}

// request is one call to the admin API.
type request struct {
	method string
	// path holds the segments of the path under --server; each is
	// escaped on its own, so a '/' or '?' in one stays inside it.
	path  []string
	query url.Values
	// body, when not nil, is sent with Content-Type ctype.
	body  []byte
	ctype string
	// accept is the media type wanted for a 2xx answer (default JSON).
	accept string
	// header holds extra request headers.
	header map[string]string
	// once: the request must not be sent twice (a create that the server
	// cannot recognise when repeated, such as a random key seed): it is
	// sent again only when it never reached the server.
	once bool
	// doneIfRepeated names the refusals (problem reasons) that, answered
	// to a repeated request, mean that an earlier attempt did the work
	// (restore: not_deleted; purge: unknown_key).
	doneIfRepeated []string
}

// answer is a 2xx response.
type answer struct {
	status int
	ctype  string // the media type, without parameters
	body   []byte
	// repeated: no body; an earlier attempt did the work (see
	// request.doneIfRepeated).
	repeated bool
}

// do sends in (when not nil) as JSON to the API path made of segments and
// returns the body of a 2xx answer.
func (c *client) do(ctx context.Context, method string, in any, segments ...string) ([]byte, error) {
	r := request{method: method, path: segments}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		r.body, r.ctype = b, mediaJSON
	}
	a, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	return a.body, nil
}

// send makes a request and returns a 2xx answer. Any other answer is an
// *exitError wrapping a *serverError: exit 1 for 4xx and for 501 (the
// server is not configured for the request: retrying will not help), 3 for
// anything else.
//
// It sends the request again, up to c.retries times, with exponential
// backoff and jitter (retryBase doubling up to retryCap, or the server's
// Retry-After when longer, at most retryAfterCap), when the answer may
// change: the server could not be reached, the connection dropped or
// timed out, or the answer was 502, 503 (a store that did not answer, a
// write its replicas did not confirm: not_replicated), 504 or 429. Every
// admin write is safe to repeat: creating a key that is stored as asked
// answers "unchanged", and a POST with a body carries one Idempotency-Key
// for all its attempts, so a random key created by an attempt whose answer
// was lost is the one a retry answers. A request marked once is repeated
// only when it never reached the server. A refusal in doneIfRepeated
// answered to a repeated request means an earlier attempt did the work.
func (c *client) send(ctx context.Context, r request) (*answer, error) {
	// One key for every attempt of a POST with a body (a create, an
	// import). net/http replays a request that carries one by itself when
	// a kept-alive connection was closed under it; a request sent once
	// carries none, and neither does a request without a body, whose
	// attempts are counted here alone (doneIfRepeated).
	idem := ""
	if r.method == http.MethodPost && r.body != nil && !r.once && r.header["Idempotency-Key"] == "" {
		idem = newIdempotencyKey()
	}
	for attempt := 0; ; attempt++ {
		a, sent, err := c.sendOnce(ctx, r, idem)
		if err == nil {
			return a, nil
		}
		var se *serverError
		if attempt > 0 && errors.As(err, &se) && slices.Contains(r.doneIfRepeated, se.p.Reason) {
			return &answer{status: http.StatusOK, repeated: true}, nil
		}
		wait, again := retryable(err, sent && r.once)
		if !again || attempt >= c.retries {
			return nil, err
		}
		wait = max(wait, backoff(attempt))
		if c.notes != nil {
			fmt.Fprintf(c.notes, "kdctl: %v; sending it again in %v (retry %d of %d)\n", err, wait.Round(time.Millisecond), attempt+1, c.retries)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// Retry timing (see send).
const (
	retryBase     = 250 * time.Millisecond
	retryCap      = 8 * time.Second
	retryAfterCap = 30 * time.Second
)

// backoff is the wait before retry attempt+1: retryBase doubled attempt
// times, at most retryCap, less a random part of up to a half.
func backoff(attempt int) time.Duration {
	d := min(retryCap, retryBase<<min(attempt, 10))
	return d - time.Duration(mathrand.Int64N(int64(d/2)+1))
}

// retryable reports whether an attempt that failed with err may be sent
// again, and the wait the server asked for. sentOnce: the request may not
// be repeated once it reached the server.
func retryable(err error, sentOnce bool) (time.Duration, bool) {
	var se *serverError
	if errors.As(err, &se) {
		switch se.status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return min(se.retryAfter, retryAfterCap), !sentOnce
		}
		return 0, false
	}
	var ne *networkError
	if errors.As(err, &ne) {
		return 0, !ne.sent || !sentOnce
	}
	return 0, false
}

// networkError is a request that got no answer; sent tells whether it
// may have reached the server.
type networkError struct {
	sent bool
	err  error
}

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// newIdempotencyKey is a random key for the attempts of one request.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "kdctl-" + hex.EncodeToString(b[:])
}

// sendOnce makes one attempt; sent reports whether the request may have
// reached the server.
func (c *client) sendOnce(ctx context.Context, r request, idem string) (_ *answer, sent bool, _ error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r.path, r.query).String(), body)
	if err != nil {
		return nil, false, usageError("%v", err)
	}
	accept := r.accept
	if accept == "" {
		accept = mediaJSON
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept+", "+mediaProblem)
	req.Header.Set("User-Agent", "kdctl")
	if r.body != nil {
		req.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var oe *net.OpError
		sent := !(errors.As(err, &oe) && oe.Op == "dial")
		return nil, sent, &exitError{code: exitUnavailable, err: &networkError{sent: sent,
			err: fmt.Errorf("server unreachable at %s: %w", redact(c.base), unwrapURLError(err))}}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, true, &exitError{code: exitUnavailable, err: &networkError{sent: true,
			err: fmt.Errorf("reading the answer from %s: %w", redact(c.base), err)}}
	}
	if len(b) > maxResponse {
		clear(b)
		return nil, true, &exitError{code: exitUnavailable, err: fmt.Errorf("the answer from %s is larger than %d bytes", redact(c.base), maxResponse)}
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &answer{status: resp.StatusCode, ctype: mt, body: b}, true, nil
	}
	se := &serverError{status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		se.retryAfter = time.Duration(s) * time.Second
	}
	switch {
	case mt == "text/plain" && len(r.path) > 0 && r.path[0] == "speke":
		// SPEKE answers its errors in plain text.
		se.text = excerpt(b, 400)
	case mt != mediaProblem || json.Unmarshal(b, &se.p) != nil:
		se.p = problem{}
		se.raw = excerpt(b, 120)
	}
	code := exitUnavailable
	if resp.StatusCode >= 400 && resp.StatusCode < 500 || resp.StatusCode == http.StatusNotImplemented {
		code = exitRefused
	}
	return nil, true, &exitError{code: code, err: se}
}

// url is the API URL of the path segments under the base URL.
func (c *client) url(segments []string, q url.Values) *url.URL {
	u := *c.base
	raw := strings.TrimRight(u.EscapedPath(), "/")
	for _, s := range segments {
		raw += "/" + url.PathEscape(s)
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		p = raw
	}
	u.Path, u.RawPath = p, raw
	u.RawQuery, u.Fragment = q.Encode(), ""
	return &u
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact drops any user information from a URL before it is printed.
func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

func excerpt(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// notAPI is the error for a 2xx answer that is not what the admin API
// sends: --server probably names something else.
func notAPI(what string, b []byte) error {
	return &exitError{code: exitUnavailable, err: fmt.Errorf("the server's answer is not %s: %q (is --server right?)", what, excerpt(b, 120))}
}

// printJSON writes b indented, or as it came if it is not JSON.
func printJSON(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		out.Reset()
		out.Write(bytes.TrimSpace(b))
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}
