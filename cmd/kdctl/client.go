package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponse bounds what kdctl reads of an answer.
const maxResponse = 16 << 20

// client calls the admin API with one credential.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newClient(base *url.URL, token string, timeout time.Duration) *client {
	return &client{
		base:  base,
		token: token,
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
}

// serverError is a non-2xx answer.
type serverError struct {
	status int
	p      problem
	raw    string // a short excerpt when the body is not a problem
}

func (e *serverError) Error() string {
	var b strings.Builder
	if e.status >= 500 {
		fmt.Fprintf(&b, "server error: %d", e.status)
	} else {
		fmt.Fprintf(&b, "server refused: %d", e.status)
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

// do sends a request to the API path made of the given segments (each
// escaped) under the base URL, and returns the body of a 2xx answer. in,
// when not nil, is sent as JSON.
func (c *client) do(ctx context.Context, method string, in any, segments ...string) ([]byte, error) {
	u := c.base.JoinPath(segments...)
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, usageError("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "kdctl")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &exitError{code: exitUnavailable, err: fmt.Errorf("server unreachable at %s: %w", redact(c.base), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, &exitError{code: exitUnavailable, err: fmt.Errorf("reading the answer from %s: %w", redact(c.base), err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return b, nil
	}
	se := &serverError{status: resp.StatusCode}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" || json.Unmarshal(b, &se.p) != nil {
		se.p = problem{}
		se.raw = excerpt(b, 120)
	}
	code := exitUnavailable
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		code = exitRefused
	}
	return nil, &exitError{code: code, err: se}
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
