package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/netedge"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
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
	// acmeCAs verify the ACME directory's HTTPS (--acme-directory-ca).
	acmeCAs *x509.CertPool
	// proxyProtocol is --proxy-protocol, for describe.
	proxyProtocol bool
}

// planeTLS is one plane's certificate source.
type planeTLS struct {
	plane string
	files *tlsserve.CertFiles // from --tls-cert/--tls-key (or --dev-tls)
	acme  *tlsserve.ACME      // from --acme-domain, once built
	// viaACME: the certificates come from ACME (acme is built with the
	// listener).
	viaACME bool
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
	e.proxyProtocol = cfg.ProxyProtocol
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
	if len(cfg.ACMEDomains) > 0 {
		e.delivery = &planeTLS{plane: "delivery", viaACME: true} // the ACME client itself is built with the listener
		if cfg.ACMEDirectoryCA != "" {
			if e.acmeCAs, err = tlsserve.LoadCertPool(cfg.ACMEDirectoryCA, time.Now()); err != nil {
				return nil, fmt.Errorf("--acme-directory-ca: %w", err)
			}
		}
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

// summary is what --check-config prints of the edge: the listeners, and
// each certificate file's subject, names and expiry.
func (e *edge) summary() [][2]string {
	out := [][2]string{{"listeners", e.describe()}}
	for _, p := range []*planeTLS{e.delivery, e.admin} {
		if p != nil && p.files != nil {
			leaf := p.files.Leaf()
			out = append(out, [2]string{p.plane + " tls cert", fmt.Sprintf("%s, names %v, expires %s",
				leaf.Subject, tlsserve.Names(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

// describe is the edge in a line, for --check-config.
func (e *edge) describe() string {
	scheme := func(p *planeTLS) string {
		switch {
		case p == nil:
			return "http"
		case p.viaACME:
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
		if e.proxyProtocol {
			s += " (PROXY protocol)"
		}
	}
	return s
}

// clientAddr is the address of the client of r, for both planes.
func (e *edge) clientAddr(r *http.Request) string { return e.proxies.ClientAddr(r) }

// buildEdge puts the edge on the listeners and servers built by build:
// PROXY protocol and the connection cap on each listener; TLS (HTTP/2 by
// ALPN, certificates from files or ACME), cleartext HTTP/2.
func (s *app) buildEdge() error {
	cfg, e := s.cfg, s.m.edge
	if len(cfg.ACMEDomains) > 0 {
		if err := s.buildACME(); err != nil {
			return err
		}
	}
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
	return nil
}

// buildACME builds the ACME client of the delivery plane: its account and
// certificates under --data-dir, or, on the Redis store, in Redis (sealed
// under the KEK, so Redis never holds a private key in the clear), where
// every instance finds them and only one at a time orders. TLS-ALPN-01 is
// answered on the delivery listener; HTTP-01 on --acme-http-listen.
func (s *app) buildACME() error {
	cfg, e := s.cfg, s.m.edge
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "tls", Name: "acme_certificates_total",
		Help: "Certificates obtained or renewed from the ACME CA (result obtained), and attempts that failed (result failed; retried with backoff)."}, []string{"result"})
	s.m.reg.MustRegister(events)
	o := tlsserve.ACMEOptions{
		Domains: cfg.ACMEDomains, Email: cfg.ACMEEmail, Directory: cfg.ACMEDirectory, DirectoryCAs: e.acmeCAs,
		TLSALPNPort: tlsserve.PortOf(s.dl.Addr().String()), Log: s.log,
		OnEvent: func(event string) {
			switch event {
			case "cert_obtained":
				events.WithLabelValues("obtained").Inc()
			case "cert_failed":
				events.WithLabelValues("failed").Inc()
			}
		},
	}
	if rs, ok := s.store.(*redisstore.Store); ok {
		o.Shared = &tlsserve.SharedStorage{Blobs: rs, Seal: s.m.ring.SealBlob, Open: s.m.ring.OpenBlob}
	} else {
		o.Dir = filepath.Join(cfg.DataDir, "acme")
	}
	if cfg.ACMEHTTPListen != "" {
		l, err := net.Listen("tcp", cfg.ACMEHTTPListen)
		if err != nil {
			return fmt.Errorf("--acme-http-listen: %w", err)
		}
		s.closers = append(s.closers, l)
		s.acmeL = l
		o.HTTPPort = tlsserve.PortOf(l.Addr().String())
	}
	a, err := tlsserve.NewACME(o)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, closerFunc(a.Stop))
	e.delivery.acme = a
	if s.acmeL != nil {
		s.acmeHTTP = &http.Server{
			Handler:           a.HTTPChallengeHandler(http.HandlerFunc(redirectToHTTPS)),
			ReadHeaderTimeout: cfg.HeaderTimeout, ReadTimeout: cfg.RequestTimeout, WriteTimeout: cfg.RequestTimeout, IdleTimeout: cfg.IdleTimeout,
			ErrorLog: s.delivery.ErrorLog,
		}
	}
	return nil
}

// redirectToHTTPS sends a plain-HTTP request (on --acme-http-listen) to the
// same URL over HTTPS.
func redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// edgeChecks are the readiness checks of the edge: with ACME, a
// certificate for every domain.
func (s *app) edgeChecks() []plane.Check {
	if len(s.cfg.ACMEDomains) == 0 {
		return nil
	}
	return []plane.Check{{Name: "tls", Check: func(context.Context) error {
		if a := s.m.edge.delivery.acme; a != nil {
			return a.Ready()
		}
		return errors.New("ACME not started")
	}}}
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
// --tls-reload; ACME obtains (the listeners are open) and renews on its
// own, and its HTTP-01 listener serves until ctx ends.
func (s *app) watchEdge(g *errgroup.Group, ctx context.Context) {
	if a := s.m.edge.delivery; a != nil && a.acme != nil {
		if err := a.acme.Start(ctx); err != nil {
			s.log.Error("ACME could not start; certificates will not be obtained", "err", err)
		}
	}
	if s.acmeHTTP != nil {
		g.Go(func() error { return serve(s.acmeHTTP, s.acmeL) })
		g.Go(func() error { <-ctx.Done(); return s.acmeHTTP.Close() })
	}
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
