package redisstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The URL forms New accepts, for error messages. They show no password
// placeholder: Options.Password is the place for a password (a URL may
// still carry one, percent-encoded, as user:password@).
const urlForms = "redis://[user@]host:port/db, rediss://..., " +
	"redis+sentinel://[user@]h1:p1,h2:p2/MASTERNAME[?db=N] or " +
	"redis+cluster://[user@]h1:p1,h2:p2"

// CheckURL reports whether raw is a URL New accepts, without connecting,
// for a caller that lists the accepted forms itself: its errors say what
// is wrong without listing them. They never quote a password.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	var fe *formsError
	if errors.As(err, &fe) {
		return errors.New("redisstore: " + fe.msg)
	}
	return err
}

// formsError is a URL error that New follows with the accepted forms.
type formsError struct{ msg string }

func (e *formsError) Error() string { return "redisstore: " + e.msg + ": want " + urlForms }

func formsErrorf(format string, args ...any) error {
	return &formsError{msg: fmt.Sprintf(format, args...)}
}

// mode is the kind of deployment a URL names.
type mode int

const (
	standalone mode = iota
	sentinel
	cluster
)

const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
	redactedPassword    = "xxxxx"
)

// endpoint is a parsed URL.
type endpoint struct {
	mode     mode
	tls      bool
	addrs    []string // host:port, at least one
	db       int      // standalone and sentinel only
	master   string   // sentinel only
	user     string
	password string
	scheme   string // as written
	rest     string // everything after the user info, as written
}

// redacted returns the URL with the password, if any, replaced by xxxxx.
// It is built from the effective credentials (after the Options overrides),
// so it shows that a password is in use even when it came from
// Options.Password.
func (e endpoint) redacted() string {
	var ui string
	switch {
	case e.password != "":
		ui = url.UserPassword(e.user, redactedPassword).String() + "@"
	case e.user != "":
		ui = url.User(e.user).String() + "@"
	}
	return e.scheme + "://" + ui + e.rest
}

// parseURL parses the forms in urlForms. Its errors never contain the user
// info (which holds the password) nor, when it cannot tell where the user
// info ends, any part of the URL at all.
func parseURL(raw string) (endpoint, error) {
	var e endpoint
	scheme, rest, ok := strings.Cut(raw, "://")
	if raw == "" {
		return e, formsErrorf("no URL")
	}
	if !ok {
		return e, formsErrorf("URL has no scheme")
	}
	e.scheme = scheme
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		e.tls = true
	case "redis+sentinel":
		e.mode = sentinel
	case "rediss+sentinel":
		e.mode, e.tls = sentinel, true
	case "redis+cluster":
		e.mode = cluster
	case "rediss+cluster":
		e.mode, e.tls = cluster, true
	default:
		if !isSchemeName(scheme) {
			return e, formsErrorf("URL scheme is not supported")
		}
		return e, formsErrorf("URL scheme %q is not supported", scheme)
	}

	// The authority ends at the first '/', '?' or '#'; the user info is
	// everything in it up to the last '@'. A '@' after the authority means
	// the password holds an unescaped '/', '?' or '#', and then nothing of
	// the URL can be echoed safely.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		return e, errors.New("redisstore: URL has '@' after the host: percent-encode '/', '?', '#' and '@' in the user and password")
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo := authority[:i]
		authority = authority[i+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err1, err2 error
		e.user, err1 = url.PathUnescape(user)
		e.password, err2 = url.PathUnescape(pass)
		if err1 != nil || err2 != nil {
			return e, errors.New("redisstore: URL user or password has an invalid percent-encoding")
		}
	}
	e.rest = authority + tail
	// From here on nothing secret is left to leak: the user info is gone.

	defPort := defaultPort
	if e.mode == sentinel {
		defPort = defaultSentinelPort
	}
	if authority == "" {
		return e, formsErrorf("URL %s has an empty host", e.redacted())
	}
	for _, h := range strings.Split(authority, ",") {
		addr, err := parseHostPort(h, defPort)
		if err != nil {
			return e, fmt.Errorf("redisstore: URL %s: %w", e.redacted(), err)
		}
		e.addrs = append(e.addrs, addr)
	}
	if e.mode == standalone && len(e.addrs) > 1 {
		return e, fmt.Errorf("redisstore: URL %s names %d hosts: use redis+cluster:// or redis+sentinel:// for several", e.redacted(), len(e.addrs))
	}

	if strings.Contains(tail, "#") {
		return e, fmt.Errorf("redisstore: URL %s has a fragment ('#'): remove it", e.redacted())
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return e, fmt.Errorf("redisstore: URL %s: bad query: %v", e.redacted(), err)
	}
	switch e.mode {
	case standalone:
		if e.db, err = parseDB(strings.TrimPrefix(path, "/")); err != nil {
			return e, fmt.Errorf("redisstore: URL %s: %w in the path (want %s)", e.redacted(), err, "redis://host:port/db")
		}
	case sentinel:
		name, err := url.PathUnescape(strings.TrimPrefix(path, "/"))
		if err != nil || name == "" || strings.Contains(name, "/") {
			return e, fmt.Errorf("redisstore: URL %s: want the sentinel master name as the path: redis+sentinel://h1:p1,h2:p2/MASTERNAME[?db=N]", e.redacted())
		}
		e.master = name
		if v, ok := query["db"]; ok {
			if len(v) != 1 {
				return e, fmt.Errorf("redisstore: URL %s: db given %d times", e.redacted(), len(v))
			}
			if e.db, err = parseDB(v[0]); err != nil {
				return e, fmt.Errorf("redisstore: URL %s: %w in ?db=", e.redacted(), err)
			}
			delete(query, "db")
		}
	case cluster:
		if path != "" && path != "/" && path != "/0" {
			return e, fmt.Errorf("redisstore: URL %s: Redis Cluster has only database 0: want redis+cluster://h1:p1,h2:p2 without a path", e.redacted())
		}
	}
	for k := range query {
		return e, fmt.Errorf("redisstore: URL %s: unknown parameter %q (only redis+sentinel:// takes ?db=N)", e.redacted(), k)
	}
	return e, nil
}

// parseDB parses a database number; "" is 0.
func parseDB(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("database %q is not a number", s)
	}
	return n, nil
}

// parseHostPort parses "host", "host:port", "[v6]" or "[v6]:port".
func parseHostPort(s, defPort string) (string, error) {
	if s == "" {
		return "", errors.New("empty host")
	}
	host, port := s, defPort
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("host %q: missing ']'", s)
		}
		host = s[1:end]
		if after := s[end+1:]; after != "" {
			if !strings.HasPrefix(after, ":") {
				return "", fmt.Errorf("host %q: want [address]:port", s)
			}
			port = after[1:]
		}
		if net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil {
			return "", fmt.Errorf("host %q: %q is not an IPv6 address", s, host)
		}
	case strings.Contains(s, ":"):
		host, port, _ = strings.Cut(s, ":")
		if strings.Contains(port, ":") {
			return "", fmt.Errorf("host %q: put an IPv6 address in brackets", s)
		}
		fallthrough
	default:
		if host == "" {
			return "", fmt.Errorf("host %q: empty host name", s)
		}
		for _, c := range host {
			if !(c == '.' || c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return "", fmt.Errorf("host %q: bad character %q in host name", s, c)
			}
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", fmt.Errorf("host %q: port %q is not a number from 1 to 65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

func isSchemeName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c == '+' || c == '-' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
