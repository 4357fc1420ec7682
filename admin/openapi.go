package admin

import (
	_ "embed" // the OpenAPI document is embedded
	"net/http"

	"github.com/keydelivery/keydelivery/admin/plane"
)

// openAPI is the admin API's OpenAPI 3.1 document (the native API and the
// AMS API), kept in the repository beside this file and served at GET
// /api/openapi.json.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the admin API's OpenAPI document.
func OpenAPI() []byte { return openAPI }

func (a *api) openAPIDoc(*plane.Call) (plane.Answer, error) {
	return plane.Blob(http.StatusOK, "application/json", openAPI), nil
}
