package admin

import (
	_ "embed" // the OpenAPI document is embedded
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI is the admin API's OpenAPI 3.1 document, kept in the repository
// beside this file and served at GET /api/openapi.json.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the admin API's OpenAPI document.
func OpenAPI() []byte { return openAPI }

func (s *server) openAPIDoc(c echo.Context) error {
	if err := s.conclude(c, nil, nil, false); err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
}
