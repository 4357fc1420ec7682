package admin

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
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
func (s *server) tokenCertificates(c echo.Context) error {
	certs := s.certs()
	now := s.now()
	out := make([]certificateJSON, 0, len(certs))
	for _, ct := range certs {
		out = append(out, certificateJSON{
			Subject:   ct.Subject,
			X5T:       ct.X5T(),
			SHA256:    hex.EncodeToString(ct.SHA256[:]),
			NotBefore: ct.NotBefore.UTC(),
			NotAfter:  ct.NotAfter.UTC(),
			Status:    ct.Status(now, s.leeway),
			Source:    ct.Source,
		})
	}
	if err := s.conclude(c, nil, nil, false); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
