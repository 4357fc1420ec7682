package delivery

import (
	"fmt"
	"net/url"
	"strings"
)

// newOriginMatcher compiles the CORS allow-list. Entries are "*" (any
// origin), exact origins ("https://player.example.com:8443"), or host
// patterns whose first label is "*" ("https://*.example.com", matching any
// subdomain at any depth but not example.com itself). It returns nil for an
// empty list (CORS off). The matched origin is echoed back, never a literal
// "*", because responses allow credentials.
func newOriginMatcher(entries []string) (func(origin string) bool, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	exact := map[string]bool{}
	type pattern struct{ scheme, suffix, port string }
	var patterns []pattern
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "*" {
			return func(origin string) bool { return origin != "" && origin != "null" }, nil
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("delivery: cors origin %q: want \"*\", an origin such as https://player.example.com, or a pattern such as https://*.example.com", e)
		}
		host := strings.ToLower(u.Host)
		if strings.HasPrefix(host, "*.") {
			h, port, _ := strings.Cut(host[1:], ":")
			if strings.Contains(h, "*") || len(h) < 2 {
				return nil, fmt.Errorf("delivery: cors origin %q: only the first label may be *", e)
			}
			patterns = append(patterns, pattern{scheme: u.Scheme, suffix: h, port: port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("delivery: cors origin %q: only the first label may be *", e)
		}
		exact[u.Scheme+"://"+host] = true
	}
	return func(origin string) bool {
		o := strings.ToLower(origin)
		if exact[o] {
			return true
		}
		scheme, host, ok := strings.Cut(o, "://")
		if !ok || strings.ContainsAny(host, "/?#@") {
			return false
		}
		h, port, _ := strings.Cut(host, ":")
		for _, p := range patterns {
			if scheme == p.scheme && port == p.port && strings.HasSuffix(h, p.suffix) && len(h) > len(p.suffix) {
				return true
			}
		}
		return false
	}, nil
}

// CheckCORSOrigins reports whether entries are a valid CORS allow-list, as
// New would accept it, so a configuration check refuses what New would.
func CheckCORSOrigins(entries []string) error {
	_, err := newOriginMatcher(entries)
	return err
}
