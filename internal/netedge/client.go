package netedge

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Header names the request header a trusted proxy writes the client's
// address to.
type Header int

const (
	// XForwardedFor is "X-Forwarded-For: client, proxy1, proxy2" (nginx,
	// Caddy, HAProxy, Kubernetes ingress controllers, cloud load balancers).
	XForwardedFor Header = iota
	// Forwarded is RFC 7239's "Forwarded: for=client, for=proxy1".
	Forwarded
)

// ParseHeader reads a header name as a flag gives it.
func ParseHeader(s string) (Header, error) {
	switch strings.ToLower(s) {
	case "x-forwarded-for":
		return XForwardedFor, nil
	case "forwarded":
		return Forwarded, nil
	}
	return 0, fmt.Errorf("netedge: header %q: want X-Forwarded-For or Forwarded", s)
}

// Proxies are the trusted proxies: the peers whose forwarded client
// addresses are believed. The zero value (and nil) trusts none.
type Proxies struct {
	prefixes []netip.Prefix
	header   Header
}

// ParseProxies reads CIDR prefixes ("10.0.0.0/8") and single addresses
// ("192.0.2.7", "::1"): the peers whose header h is believed.
func ParseProxies(list []string, h Header) (*Proxies, error) {
	p := &Proxies{header: h}
	var errs []error
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if pre, err := netip.ParsePrefix(s); err == nil {
			p.prefixes = append(p.prefixes, pre.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("netedge: trusted proxy %q: want a CIDR prefix (10.0.0.0/8) or an address", s))
	}
	return p, errors.Join(errs...)
}

// Len is the number of trusted prefixes.
func (p *Proxies) Len() int {
	if p == nil {
		return 0
	}
	return len(p.prefixes)
}

// Trusted reports whether a is a trusted proxy.
func (p *Proxies) Trusted(a netip.Addr) bool {
	if p == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, pre := range p.prefixes {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r, without a port:
// the peer's (r.RemoteAddr, which the PROXY protocol listener already set
// to the address its trusted proxy declared), unless the peer is a trusted
// proxy; then the right-most address of the forwarded header that is not a
// trusted proxy (all trusted: the left-most one). A hop that does not parse
// (obfuscated, "unknown", garbage) stops the walk at the last hop that did.
// Its signature is echo's IPExtractor's.
func (p *Proxies) ClientAddr(r *http.Request) string {
	peer := peerAddr(r.RemoteAddr)
	if !p.Trusted(peer) {
		if peer.IsValid() {
			return peer.String()
		}
		return hostOnly(r.RemoteAddr)
	}
	var hops []string
	switch p.header {
	case Forwarded:
		hops = forwardedFor(r.Header.Values("Forwarded"))
	default:
		for _, v := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(v, ",")...)
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
		if !p.Trusted(a) {
			break
		}
	}
	return client.String()
}

// peerAddr is the address of a "host:port" RemoteAddr.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(hostOnly(remote))
	return a.Unmap()
}

func hostOnly(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// parseHop reads one forwarded hop: an address, with or without a port,
// IPv6 in brackets or not.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		if ap, perr := netip.ParseAddrPort(s); perr == nil {
			a, err = ap.Addr(), nil
		} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
		}
	}
	if err != nil {
		return netip.Addr{}, false
	}
	// An IPv6 zone names an interface of the machine that wrote it: it
	// means nothing here, and a client that could choose it would choose a
	// new rate-limit budget, and new text in the logs, with each request.
	return a.WithZone("").Unmap(), true
}

// forwardedFor lists the for= values of Forwarded headers, in order: the
// header is a comma-separated list of elements, each a semicolon-separated
// list of pairs, values optionally quoted. An element without for= is a hop
// that does not parse.
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range splitQuoted(v, ',') {
			hop := "?"
			for _, pair := range splitQuoted(elem, ';') {
				name, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(name, "for") {
					hop = strings.Trim(strings.TrimSpace(val), `"`)
				}
			}
			out = append(out, hop)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
