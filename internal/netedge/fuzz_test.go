package netedge

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientAddr: whatever a client puts in X-Forwarded-For or Forwarded,
// ClientAddr does not panic and answers either the peer or an address
// that the header itself holds, never one from nowhere; and from an
// untrusted peer, always the peer.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "6.6.6.6, 198.51.100.1, 10.0.0.9", `for="[2001:db8::1]:4711";proto=https, for=10.0.0.1`,
		"unknown", "for=_hidden", `for="`, ",,,", "[::1", "10.0.0.1:80, [2001:db8::2]:443"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	xff, _ := ParseProxies([]string{"10.0.0.0/8"}, XForwardedFor)
	fwd, _ := ParseProxies([]string{"10.0.0.0/8"}, Forwarded)
	f.Fuzz(func(t *testing.T, header string, forwarded bool) {
		p, name := xff, "X-Forwarded-For"
		if forwarded {
			p, name = fwd, "Forwarded"
		}
		for _, peer := range []string{"10.1.2.3:5000", "203.0.113.9:5000"} {
			r := &http.Request{RemoteAddr: peer, Header: http.Header{name: {header}}}
			got := p.ClientAddr(r)
			host := strings.Split(peer, ":")[0]
			if got == host {
				continue
			}
			if host == "203.0.113.9" {
				t.Fatalf("untrusted peer %s attributed to %q", peer, got)
			}
			a, err := netip.ParseAddr(got)
			if err != nil || a.Zone() != "" {
				t.Fatalf("ClientAddr = %q, not an address without a zone", got)
			}
			held := false
			for _, h := range append(strings.Split(header, ","), forwardedFor([]string{header})...) {
				for _, v := range []string{h, strings.Trim(strings.TrimSpace(h), `"`)} {
					if c, ok := parseHop(v); ok && c == a {
						held = true
					}
				}
			}
			if !held {
				t.Fatalf("ClientAddr = %s, which the header %q does not hold", a, header)
			}
		}
	})
}
