package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keydelivery/keydelivery/internal/netedge"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/metrics"
)

// edge is what the two listeners need beside HTTP: each plane's TLS (none,
// certificate files, or ACME for the delivery plane), the admin plane's
// client CAs, the trusted proxies. loadEdge reads and checks it (it is part
// of what --check-config checks); (*app).buildEdge puts it on the
// listeners and servers.
type edge struct {
	proxies *netedge.Proxies
	// delivery and admin are each plane's TLS; nil for plain HTTP.
	delivery, admin *planeTLS
	clientCAs       *x509.CertPool
	reloads         *prometheus.CounterVec
}

// planeTLS is one plane's certificate source.
type planeTLS struct {
	plane string
	files *tlsserve.CertFiles // from --tls-cert/--tls-key (or --dev-tls)
	acme  *tlsserve.ACME      // from --acme-domain
}

func (p *planeTLS) getCertificate() func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if p.acme != nil {
		return p.acme.GetCertificate
	}
	return p.files.GetCertificate
}

// loadEdge reads the trusted proxies, the certificate files and the client
// CAs, refusing what cannot work: a key that does not match its
// certificate, an expired certificate, an unreadable file.
func loadEdge(cfg *config, log *slog.Logger, reg prometheus.Registerer) (*edge, error) {
	h, err := netedge.ParseHeader(cfg.TrustedProxiesHeader)
	if err != nil {
		return nil, err
	}
	e := &edge{reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "tls", Name: "certificate_reloads_total",
		Help: "Reloads of the TLS certificate files, by plane and result (ok, failed: the certificate in use stays).",
	}, []string{"plane", "result"})}
	reg.MustRegister(e.reloads)
	if e.proxies, err = netedge.ParseProxies(cfg.TrustedProxies, h); err != nil {
		return nil, err
	}
	load := func(plane, certFile, keyFile string) (*planeTLS, error) {
		if certFile == "" {
			return nil, nil
		}
		for _, result := range []string{"ok", "failed"} {
			e.reloads.WithLabelValues(plane, result)
		}
		f, err := tlsserve.LoadCertFiles(certFile, keyFile, tlsserve.CertFilesOptions{
			Log: log.With("plane", plane),
			OnReload: func(ok bool) {
				if ok {
					e.reloads.WithLabelValues(plane, "ok").Inc()
				} else {
					e.reloads.WithLabelValues(plane, "failed").Inc()
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("%s plane TLS: %w", plane, err)
		}
		return &planeTLS{plane: plane, files: f}, nil
	}
	if e.delivery, err = load("delivery", cfg.TLSCert, cfg.TLSKey); err != nil {
		return nil, err
	}
	if e.admin, err = load("admin", cfg.AdminTLSCert, cfg.AdminTLSKey); err != nil {
		return nil, err
	}
	if cfg.AdminClientCA != "" {
		if e.clientCAs, err = tlsserve.LoadCertPool(cfg.AdminClientCA, time.Now()); err != nil {
			return nil, fmt.Errorf("--admin-client-ca: %w", err)
		}
	}
	reg.MustRegister(metrics.NewTLSCertificateCollector(e.certificates))
	return e, nil
}

// certificates lists the certificates the listeners serve, for the expiry
// metric.
func (e *edge) certificates() []metrics.TLSCertificate {
	var out []metrics.TLSCertificate
	for _, p := range []*planeTLS{e.delivery, e.admin} {
		switch {
		case p == nil:
		case p.files != nil:
			leaf := p.files.Leaf()
			out = append(out, metrics.TLSCertificate{Plane: p.plane, Name: certName(leaf), NotAfter: leaf.NotAfter})
		case p.acme != nil:
			for _, c := range p.acme.Certificates() {
				out = append(out, metrics.TLSCertificate{Plane: p.plane, Name: certName(c), NotAfter: c.NotAfter})
			}
		}
	}
	return out
}

// certName is a certificate's first name, or its subject.
func certName(c *x509.Certificate) string {
	if names := tlsserve.Names(c); len(names) > 0 {
		return names[0]
	}
	return c.Subject.CommonName
}

// describe is the edge in a line, for --check-config and the startup log.
func (e *edge) describe(cfg *config) string {
	scheme := func(p *planeTLS) string {
		switch {
		case p == nil:
			return "http"
		case p.acme != nil:
			return "https (acme)"
		}
		return "https"
	}
	s := fmt.Sprintf("delivery %s, admin %s", scheme(e.delivery), scheme(e.admin))
	if e.clientCAs != nil {
		s += " with client certificates"
	}
	if e.proxies.Len() > 0 {
		s += fmt.Sprintf(", %d trusted proxy prefix(es)", e.proxies.Len())
		if cfg.ProxyProtocol {
			s += " (PROXY protocol)"
		}
	}
	return s
}

// clientAddr is the address of the client of r, for both planes.
func (e *edge) clientAddr(r *http.Request) string { return e.proxies.ClientAddr(r) }

// buildEdge puts the edge on the listeners and servers built by build:
// PROXY protocol and the connection cap on each listener; TLS (HTTP/2 by
// ALPN), cleartext HTTP/2, the idle timeout on each server.
func (s *app) buildEdge() {
	cfg, e := s.cfg, s.m.edge
	s.dl = s.edgeListener("delivery", s.dl, s.delivery)
	s.al = s.edgeListener("admin", s.al, s.admin)
	if e.delivery != nil {
		s.delivery.TLSConfig = tlsserve.ServerConfig(e.delivery.getCertificate(), nil)
		if e.delivery.acme != nil {
			s.delivery.TLSConfig.NextProtos = append(s.delivery.TLSConfig.NextProtos, tlsserve.ACMETLSProto)
		}
	} else if cfg.H2C {
		s.delivery.Protocols = new(http.Protocols)
		s.delivery.Protocols.SetHTTP1(true)
		s.delivery.Protocols.SetUnencryptedHTTP2(true)
	}
	if e.admin != nil {
		s.admin.TLSConfig = tlsserve.ServerConfig(e.admin.getCertificate(), e.clientCAs)
	}
}

// edgeListener wraps one plane's listener: the PROXY protocol (when on),
// then the connection cap, whose idle tracking it hooks on srv, with its
// metrics.
func (s *app) edgeListener(plane string, l net.Listener, srv *http.Server) net.Listener {
	cfg := s.cfg
	if cfg.ProxyProtocol {
		l = netedge.ProxyProtocol(l, s.m.edge.proxies, cfg.HeaderTimeout)
	}
	if cfg.MaxConnections == 0 {
		return l
	}
	lim := netedge.NewLimiter(cfg.MaxConnections)
	srv.ConnState = lim.ConnState
	labels := prometheus.Labels{"plane": plane}
	s.m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "http", Name: "connections",
			Help: "Connections the listener holds open.", ConstLabels: labels}, func() float64 { return float64(lim.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metrics.Namespace, Subsystem: "http", Name: "connections_max",
			Help: "The listener's cap of open connections (--max-connections).", ConstLabels: labels}, func() float64 { return float64(lim.Max()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "http", Name: "idle_connections_closed_total",
			Help: "Idle kept-alive connections closed to make room for a new one at the cap.", ConstLabels: labels}, func() float64 { return float64(lim.Evicted()) }),
	)
	return lim.Listener(l)
}

// watchEdge keeps the certificates current: the files, checked every
// --tls-reload; ACME's renewals run on their own.
func (s *app) watchEdge(g *errgroup.Group, ctx context.Context) {
	for _, p := range []*planeTLS{s.m.edge.delivery, s.m.edge.admin} {
		if p != nil && p.files != nil && s.cfg.TLSReload > 0 {
			g.Go(func() error { p.files.Watch(ctx, s.cfg.TLSReload); return nil })
		}
	}
}

// reloadTLS reloads the certificate files now (SIGHUP).
func (s *app) reloadTLS() {
	for _, p := range []*planeTLS{s.m.edge.delivery, s.m.edge.admin} {
		if p != nil && p.files != nil {
			_ = p.files.Reload() // logs its outcome
		}
	}
}

// scheme is the URL scheme of a plane's listener.
func scheme(p *planeTLS) string {
	if p == nil {
		return "http"
	}
	return "https"
}
