package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// ACMETLSProto is the ALPN protocol of the TLS-ALPN-01 challenge (RFC
// 8737): a listener that obtains its certificate by ACME offers it.
const ACMETLSProto = "acme-tls/1"

// ACMEOptions configures NewACME. Domains, Directory and Log are required,
// and one of Dir and Shared.
type ACMEOptions struct {
	// Domains are the names to obtain a certificate for (one certificate
	// each). The listener must be reachable as each of them.
	Domains []string
	// Email is the ACME account's contact (optional).
	Email string
	// Directory is the CA's ACME directory URL.
	Directory string
	// DirectoryCAs verify the directory's HTTPS (default: the system's).
	DirectoryCAs *x509.CertPool
	// Dir keeps the account and certificates in files under this
	// directory, for one instance.
	Dir string
	// Shared keeps them in a store every instance shares; only one instance
	// at a time orders a certificate, and every instance serves it.
	Shared *SharedStorage
	// TLSALPNPort is the port of the listener that answers TLS-ALPN-01
	// challenges with GetCertificate (it must offer ACMETLSProto).
	TLSALPNPort int
	// HTTPPort, when set, enables HTTP-01: the caller serves
	// HTTPChallengeHandler on that port.
	HTTPPort int
	// DisableTLSALPN turns TLS-ALPN-01 off (HTTP-01 only).
	DisableTLSALPN bool
	// RenewCheckInterval is how often the certificates are checked for
	// renewal (default 10 minutes). RenewalWindowRatio is the part of a
	// certificate's lifetime left when it is renewed (default 1/3), unless
	// the CA suggests a window (ACME Renewal Information).
	RenewCheckInterval time.Duration
	RenewalWindowRatio float64
	Log                *slog.Logger
	// OnEvent is told of each certificate event (obtained, renewed,
	// failed), for metrics: event is certmagic's name for it.
	OnEvent func(event string)
}

// ACME obtains certificates for its domains from an ACME CA (RFC 8555,
// through certmagic and acmez, which accept a finalize answer without a
// Location header), serves them, and renews them before they expire.
type ACME struct {
	o      ACMEOptions
	cache  *certmagic.Cache
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	stop   sync.Once
}

// NewACME configures the ACME client; Start begins obtaining. Nothing is
// fetched yet.
func NewACME(o ACMEOptions) (*ACME, error) {
	if len(o.Domains) == 0 || o.Directory == "" || o.Log == nil {
		return nil, errors.New("tlsserve: ACME needs domains, a directory and a log")
	}
	if (o.Dir == "") == (o.Shared == nil) {
		return nil, errors.New("tlsserve: ACME needs a directory or a shared storage, not both")
	}
	if o.RenewCheckInterval <= 0 {
		o.RenewCheckInterval = 10 * time.Minute
	}
	if o.OnEvent == nil {
		o.OnEvent = func(string) {}
	}
	var storage certmagic.Storage
	if o.Shared != nil {
		storage = newSharedStorage(o.Shared, o.Log)
	} else {
		storage = &certmagic.FileStorage{Path: o.Dir}
	}
	zl := zapLogger(o.Log.With("component", "acme"))
	a := &ACME{o: o}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return a.cfg, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		OCSPCheckInterval:  time.Hour,
		Logger:             zl,
	})
	a.cfg = certmagic.New(a.cache, certmagic.Config{
		Storage:            storage,
		Logger:             zl,
		RenewalWindowRatio: o.RenewalWindowRatio,
		// A client that sends no server name (an address in the URL) gets
		// the first domain's certificate.
		DefaultServerName: o.Domains[0],
		OnEvent: func(_ context.Context, event string, _ map[string]any) error {
			o.OnEvent(event)
			return nil
		},
	})
	a.issuer = certmagic.NewACMEIssuer(a.cfg, certmagic.ACMEIssuer{
		CA:                      o.Directory,
		Email:                   o.Email,
		Agreed:                  true,
		TrustedRoots:            o.DirectoryCAs,
		DisableHTTPChallenge:    o.HTTPPort == 0,
		DisableTLSALPNChallenge: o.DisableTLSALPN,
		// certmagic binds these ports for its own challenge server when it
		// can; ours already holds them, so it answers through
		// GetCertificate and HTTPChallengeHandler (and, with a shared
		// storage, for challenges another instance started).
		AltTLSALPNPort: o.TLSALPNPort,
		AltHTTPPort:    o.HTTPPort,
		Logger:         zl,
	})
	a.cfg.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

// Start loads the certificates already stored, and obtains or renews the
// others in the background (the listener must be serving for the CA to
// reach it), then keeps renewing them until Stop.
func (a *ACME) Start(ctx context.Context) error {
	return a.cfg.ManageAsync(ctx, a.o.Domains)
}

// Stop ends the renewals. Stopping twice is harmless.
func (a *ACME) Stop() { a.stop.Do(a.cache.Stop) }

// GetCertificate returns the certificate for a handshake, or the
// TLS-ALPN-01 challenge certificate when the CA validates.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.cfg.GetCertificate(hello)
}

// HTTPChallengeHandler answers HTTP-01 challenges and passes every other
// request to next.
func (a *ACME) HTTPChallengeHandler(next http.Handler) http.Handler {
	return a.issuer.HTTPChallengeHandler(next)
}

// Certificates lists the certificates obtained so far (the leaf of each).
func (a *ACME) Certificates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range a.o.Domains {
		for _, c := range a.cache.AllMatchingCertificates(d) {
			if c.Leaf != nil {
				out = append(out, c.Leaf)
			}
		}
	}
	return out
}

// Ready reports an error naming the domains without a certificate yet.
func (a *ACME) Ready() error {
	var missing []string
	for _, d := range a.o.Domains {
		if len(a.cache.AllMatchingCertificates(d)) == 0 {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no certificate yet for %v (being obtained from the ACME CA)", missing)
	}
	return nil
}

// PortOf is the port of a listen address such as ":443", 0 if none.
func PortOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
