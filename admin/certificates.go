package admin

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
)

// certificateJSON describes one trusted token-signing certificate.
type certificateJSON struct {
	Subject   string    `json:"subject"`
	X5T       string    `json:"x5t"`    // base64url SHA-1, as in a token's x5t header
	SHA256    string    `json:"sha256"` // hex SHA-256 of the DER certificate
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Status    string    `json:"status"` // valid, expired or not_yet_valid
	Source    string    `json:"source"`
}

// tokenCertificates serves GET /api/token-certificates.
func (a *api) tokenCertificates(*plane.Call) (plane.Answer, error) {
	certs := a.certs()
	now := a.now()
	out := make([]certificateJSON, 0, len(certs))
	for _, ct := range certs {
		out = append(out, certificateJSON{
			Subject:   ct.Subject,
			X5T:       ct.X5T(),
			SHA256:    hex.EncodeToString(ct.SHA256[:]),
			NotBefore: ct.NotBefore.UTC(),
			NotAfter:  ct.NotAfter.UTC(),
			Status:    ct.Status(now, a.leeway),
			Source:    ct.Source,
		})
	}
	return plane.JSON(http.StatusOK, out), nil
}
