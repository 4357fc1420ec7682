package plane

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
)

// TestNoCredentialsConfigured: a plane without credentials (none given, or
// an empty file) answers every /api/ request 401 no_credentials_configured,
// whatever is sent, and says how to configure one.
func TestNoCredentialsConfigured(t *testing.T) {
	empty, err := credentials.Parse([]byte("# nobody yet\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, creds := range map[string]*credentials.Set{"nil": nil, "empty": empty} {
		o := Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}
		if creds != nil {
			o.Credentials, o.Keys, o.Audit = creds, fakeKeys{}, audit.New(io.Discard, nil)
		}
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		p.Handle(http.MethodGet, "/api/things", opRead, func(*Call) (Answer, error) { return JSON(http.StatusOK, nil), nil })
		for _, secret := range []string{"", testReader} {
			r := send(p, "GET", "/api/things", secret)
			var pr map[string]any
			_ = json.Unmarshal(r.Body.Bytes(), &pr)
			if r.Code != 401 || pr["reason"] != ReasonNoCredentials || !strings.Contains(pr["detail"].(string), "--admin-credentials-file") ||
				r.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s, secret %q: %d %s", name, secret, r.Code, r.Body)
			}
		}
		if r := send(p, "GET", "/healthz", ""); r.Code != 200 {
			t.Errorf("%s: /healthz %d", name, r.Code)
		}
	}
}

// TestForbiddenNamesTheRoles: a 403 names the credential's role and the
// roles the operation needs.
func TestForbiddenNamesTheRoles(t *testing.T) {
	p, _, _, _ := newTestPlane(t)
	r := send(p, "POST", "/api/things", testReader)
	var pr map[string]any
	_ = json.Unmarshal(r.Body.Bytes(), &pr)
	if r.Code != 403 || pr["reason"] != ReasonRole || pr["detail"] != "this credential's role (reader) does not allow t.write: it needs the role writer or admin" {
		t.Errorf("%d %s", r.Code, r.Body)
	}
}
