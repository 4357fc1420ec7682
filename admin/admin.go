package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/auth"
)

// Options configures the native admin API.
type Options struct {
	// Certificates lists the trusted token-signing certificates for GET
	// /api/token-certificates (default: none).
	Certificates func() []auth.Certificate
	// Trust lists every trusted token key and trust source for GET
	// /api/token-trust (default: none).
	Trust Trust
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TokenLeeway widens certificate validity when reporting status
	// (default auth.DefaultLeeway), as the verifier does.
	TokenLeeway time.Duration
	// Rand supplies generated KIDs, key values and key seeds, and the
	// document keys of encrypted exports (default crypto/rand.Reader).
	Rand io.Reader
	// PublicURL is the delivery plane's base URL as players see it, for
	// GET /api/keys/{kid}/delivery-url (default: none; that route then
	// answers 501 public_url_not_configured).
	PublicURL string
	// MaxImportBytes caps an import body (default 64 MiB).
	MaxImportBytes int64
	// CPIXRecipient is this server's private key as a CPIX recipient: a
	// CPIX import whose keys are encrypted to its certificate is decrypted
	// (every MAC checked first). Default nil: encrypted CPIX is refused.
	CPIXRecipient *rsa.PrivateKey
}

// The operations of the native API: their audit and metric names, and the
// permission each needs.
var (
	opKeysCreate       = plane.Operation{Name: "keys.create", Perm: credentials.Write, Writes: true}
	opKeysGet          = plane.Operation{Name: "keys.get", Perm: credentials.Read}
	opCertificatesList = plane.Operation{Name: "token-certificates.list", Perm: credentials.Read}
	opKeysList         = plane.Operation{Name: "keys.list", Perm: credentials.Read}
	opAssetKeysList    = plane.Operation{Name: "assets.keys.list", Perm: credentials.Read}
	opKeysImport       = plane.Operation{Name: "keys.import", Perm: credentials.Write, Writes: true}
	opKeysExport       = plane.Operation{Name: "keys.export", Perm: credentials.Export}
	opKeysDelete       = plane.Operation{Name: "keys.delete", Perm: credentials.Write, Writes: true}
	opKeysRestore      = plane.Operation{Name: "keys.restore", Perm: credentials.Write, Writes: true}
	opKeysPurge        = plane.Operation{Name: "keys.purge", Perm: credentials.Admin, Writes: true}
	opKeysDeliveryURL  = plane.Operation{Name: "keys.delivery-url", Perm: credentials.Read}
	opOpenAPI          = plane.Operation{Name: "openapi.get", Perm: credentials.Read}

	// Key seeds are as sensitive as every key that can be derived from
	// them: only an admin creates one. Any role may read their metadata
	// (never the seed).
	opKeySeedsCreate = plane.Operation{Name: "keyseeds.create", Perm: credentials.Admin, Writes: true}
	opKeySeedsList   = plane.Operation{Name: "keyseeds.list", Perm: credentials.Read}
	opKeySeedsGet    = plane.Operation{Name: "keyseeds.get", Perm: credentials.Read}

	// Adopting the store accepts whatever it holds as the truth: admin.
	opStoreAdopt = plane.Operation{Name: "store.adopt", Perm: credentials.Admin, Writes: true}
)

// api serves the native admin API. It holds no key store: its operations
// reach the store through their plane.Call only.
type api struct {
	certs          func() []auth.Certificate
	trust          Trust
	now            func() time.Time
	leeway         time.Duration
	rand           io.Reader
	publicURL      string
	maxImportBytes int64
	recipient      *rsa.PrivateKey
}

// Register mounts the native admin API on p.
func Register(p *plane.Plane, o Options) error {
	if p == nil {
		return errors.New("admin: no plane")
	}
	a := &api{certs: o.Certificates, trust: o.Trust, now: o.Now, leeway: o.TokenLeeway, rand: o.Rand,
		publicURL: o.PublicURL, maxImportBytes: o.MaxImportBytes, recipient: o.CPIXRecipient}
	if a.certs == nil {
		a.certs = func() []auth.Certificate { return nil }
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.leeway <= 0 {
		a.leeway = auth.DefaultLeeway
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.maxImportBytes <= 0 {
		a.maxImportBytes = 64 << 20
	}
	p.Handle(http.MethodPost, "/api/keys", opKeysCreate, a.createKey)
	p.Handle(http.MethodGet, "/api/keys", opKeysList, a.listKeys)
	p.Handle(http.MethodPost, "/api/keys/import", opKeysImport, a.importKeys)
	p.Handle(http.MethodPost, "/api/Import/ContentKeys", opKeysImport, a.importKeys)
	p.Handle(http.MethodPost, "/api/keys/export", opKeysExport, a.exportKeys)
	p.Handle(http.MethodGet, "/api/keys/:kid", opKeysGet, a.getKey)
	p.HandleSelect(http.MethodDelete, "/api/keys/:kid", a.deleteOrPurge, opKeysDelete, opKeysPurge)
	p.Handle(http.MethodPost, "/api/keys/:kid/restore", opKeysRestore, a.restoreKey)
	p.Handle(http.MethodGet, "/api/keys/:kid/delivery-url", opKeysDeliveryURL, a.deliveryURL)
	p.Handle(http.MethodGet, "/api/assets/:asset/keys", opAssetKeysList, a.listAssetKeys)
	p.Handle(http.MethodGet, "/api/token-certificates", opCertificatesList, a.tokenCertificates)
	p.Handle(http.MethodGet, "/api/token-trust", opTrustList, a.tokenTrust)
	p.Handle(http.MethodGet, "/api/openapi.json", opOpenAPI, a.openAPIDoc)
	p.Handle(http.MethodPost, "/api/keyseeds", opKeySeedsCreate, a.createKeySeed)
	p.Handle(http.MethodGet, "/api/keyseeds", opKeySeedsList, a.listKeySeeds)
	p.Handle(http.MethodGet, "/api/keyseeds/:id", opKeySeedsGet, a.getKeySeed)
	p.Handle(http.MethodPost, "/api/store/adopt", opStoreAdopt, a.adoptStore)
	return nil
}
