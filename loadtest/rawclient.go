package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// doer sends one request and reads the whole answer: status, body length,
// and a short error class for failures ("" on success).
type doer interface {
	do(r request) (status, n int, errClass string)
	close()
}

// rawConn is a minimal HTTP/1.1 keep-alive client over one TCP connection,
// used by one worker at a time: it writes the request from a reused buffer
// and parses only what it needs of the answer (status, Content-Length,
// chunked bodies, Connection: close). net/http's client costs about as
// much CPU per request as the server under test; this one a fraction of
// it, leaving the shared cores to the server (see README.md).
type rawConn struct {
	addr    string
	host    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	wbuf    []byte
	reused  bool
	// tlsConf, when set, makes each connection TLS (the tls subcommand);
	// lastResumed says whether the last handshake resumed a session.
	tlsConf     *tls.Config
	lastResumed bool
}

func newRawConn(addr, host string, timeout time.Duration) *rawConn {
	return &rawConn{addr: addr, host: host, timeout: timeout, wbuf: make([]byte, 0, 1024)}
}

func (r *rawConn) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}

var errProtocol = errors.New("malformed HTTP answer")

func (r *rawConn) do(req request) (int, int, string) {
	status, n, closeAfter, err := r.roundTrip(req)
	if err != nil && r.reused && status == 0 && !isTimeout(err) {
		// The server closed a kept-alive connection before answering
		// (idle timeout): retry once on a new one, as net/http does for
		// a GET.
		r.close()
		status, n, closeAfter, err = r.roundTrip(req)
	}
	if err != nil {
		r.close()
		if errors.Is(err, errProtocol) {
			return status, n, "protocol error"
		}
		if status != 0 {
			return status, n, "read: " + classify(err)
		}
		return 0, 0, classify(err)
	}
	if closeAfter {
		r.close()
	}
	return status, n, ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *rawConn) roundTrip(req request) (status, n int, closeAfter bool, err error) {
	if r.c == nil {
		c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
		if err != nil {
			return 0, 0, false, err
		}
		if r.tlsConf != nil {
			tc := tls.Client(c, r.tlsConf)
			_ = tc.SetDeadline(time.Now().Add(r.timeout))
			if err := tc.Handshake(); err != nil {
				c.Close()
				return 0, 0, false, err
			}
			r.lastResumed = tc.ConnectionState().DidResume
			c = tc
		}
		r.c = c
		r.reused = false
		if r.br == nil {
			r.br = bufio.NewReaderSize(c, 4096)
		} else {
			r.br.Reset(c)
		}
	} else {
		r.reused = true
	}
	if err := r.c.SetDeadline(time.Now().Add(r.timeout)); err != nil {
		return 0, 0, false, err
	}
	w := r.wbuf[:0]
	w = append(w, "GET "...)
	w = append(w, req.path...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, r.host...)
	w = append(w, "\r\nUser-Agent: kd-loadtest\r\nAuthorization: "...)
	w = append(w, req.auth...)
	w = append(w, "\r\n\r\n"...)
	r.wbuf = w
	if _, err := r.c.Write(w); err != nil {
		return 0, 0, false, err
	}
	return readResponse(r.br)
}

// readResponse reads one HTTP/1.1 answer to a GET from br.
func readResponse(br *bufio.Reader) (status, n int, closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, false, errProtocol
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, false, errProtocol
	}
	if line[7] == '0' {
		closeAfter = true // HTTP/1.0 without keep-alive
	}
	contentLength, chunked := -1, false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				err = errProtocol
			}
			return status, 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, 0, false, errProtocol
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			v, err := strconv.Atoi(string(value))
			if err != nil || v < 0 {
				return status, 0, false, errProtocol
			}
			contentLength = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				closeAfter = true
			}
		}
	}
	switch {
	case status == 204 || status == 304 || status/100 == 1:
		return status, 0, closeAfter, nil
	case chunked:
		n, err = readChunked(br)
		return status, n, closeAfter, err
	case contentLength >= 0:
		d, err := br.Discard(contentLength)
		return status, d, closeAfter, err
	default: // body until the connection closes
		d, err := io.Copy(io.Discard, br)
		return status, int(d), true, err
	}
}

func readChunked(br *bufio.Reader) (int, error) {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil || size < 0 {
			return total, errProtocol
		}
		if size == 0 {
			for { // trailers, then the blank line
				t, err := br.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		d, err := br.Discard(int(size))
		total += d
		if err != nil {
			return total, err
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return total, errProtocol
		}
	}
}

// netHTTPDoer adapts the shared net/http client to the doer interface.
type netHTTPDoer struct{ c *client }

func (d netHTTPDoer) do(r request) (int, int, string) { return d.c.do(r) }
func (d netHTTPDoer) close()                          {}
