package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/admin/amsapi"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/admin/speke"
	"github.com/keydelivery/keydelivery/internal/admintest"
)

// registerSiblings mounts the other APIs of the admin listener, as the
// server does: the AMS API and SPEKE.
func registerSiblings(t *testing.T, p *plane.Plane) {
	t.Helper()
	if err := amsapi.Register(p, amsapi.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := speke.Register(p, speke.Options{}); err != nil {
		t.Fatal(err)
	}
}

// guarded reports whether a path needs a credential: the native and AMS
// APIs under /api/, SPEKE under /speke/.
func guarded(path string) bool {
	return strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/speke/")
}

// openAPIDocument is the part of admin/openapi.json these tests read.
type openAPIDocument struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Parameters map[string]openAPIParameter `json:"parameters"`
	} `json:"components"`
}

type openAPIParameter struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
	Example  any    `json:"example"`
}

type openAPIOperation struct {
	OperationID string                `json:"operationId"`
	Description string                `json:"description"`
	Security    []map[string][]string `json:"security"`
	Parameters  []openAPIParameter    `json:"parameters"`
	Responses   map[string]any        `json:"responses"`
	// AdminOperations names the operation's audit and metric operations
	// with the least role each needs, and the query that selects it when
	// one path and method serve two (DELETE ... ?purge=true).
	AdminOperations []struct {
		Name  string           `json:"name"`
		Role  credentials.Role `json:"role"`
		Query string           `json:"query"`
	} `json:"x-admin-operations"`
}

// documentedOperation is one method of one path of the document.
type documentedOperation struct {
	method, path string
	op           openAPIOperation
	params       []openAPIParameter // path-level and operation-level, resolved
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) (openAPIDocument, []documentedOperation) {
	t.Helper()
	var doc openAPIDocument
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("admin/openapi.json is not JSON: %v", err)
	}
	resolve := func(p openAPIParameter) openAPIParameter {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			r, found := doc.Components.Parameters[name]
			if !found {
				t.Errorf("parameter %s is not defined", p.Ref)
			}
			return r
		}
		return p
	}
	var ops []documentedOperation
	for path, item := range doc.Paths {
		var shared []openAPIParameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for key, raw := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			d := documentedOperation{method: strings.ToUpper(key), path: path}
			if err := json.Unmarshal(raw, &d.op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			for _, p := range append(slices.Clone(shared), d.op.Parameters...) {
				d.params = append(d.params, resolve(p))
			}
			ops = append(ops, d)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return doc, ops
}

// registeredRoutes are the routes of the admin listener as the server
// mounts it (the plane, the native API, the AMS API and SPEKE), as
// "METHOD /path/{param}". The AMS API's routes for OData key segments are
// written as the clients spell them (ContentKeys('{id}')), which its
// pre-router turns into the ordinary route ContentKeys/{id}.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	env := newEnv(t, func(o *testOptions) { o.Metrics = http.NotFoundHandler() })
	registerSiblings(t, env.Plane)
	routes := map[string]bool{}
	for _, r := range env.Plane.Routes() {
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		path := strings.Join(segs, "/")
		for _, set := range []string{"ContentKeys", "Assets"} {
			if i := strings.Index(path, "/"+set+"/{"); i >= 0 {
				end := i + len(set) + 2 + strings.IndexByte(path[i+len(set)+2:], '}') + 1
				path = path[:i] + "/" + set + "('" + path[i+len(set)+2:end] + "')" + path[end:]
			}
		}
		// The internal route of ContentKeys/$count (see amsapi's preRoute).
		path = strings.Replace(path, "/api/$count/ContentKeys", "/api/ContentKeys/$count", 1)
		routes[r.Method+" "+path] = true
	}
	return routes
}

// TestOpenAPIDocumentsEveryRoute fails when a route is added without being
// documented in admin/openapi.json, or documented without being served.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for _, d := range ops {
		documented[d.method+" "+d.path] = true
	}
	routes := registeredRoutes(t)
	for _, must := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "POST /api/keys"} {
		if !routes[must] {
			t.Fatalf("the route list lacks %s: %v", must, routes)
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not documented in admin/openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("admin/openapi.json documents %s, which is not a route", d)
		}
	}
}

// TestOpenAPIOperations checks each operation's shape: a unique
// operationId, a description, responses, declared path parameters, the
// bearer scheme on /api/, bearer and basic on /speke/ and none elsewhere,
// and the admin operations and roles of access.go.
func TestOpenAPIOperations(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["adminBearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("adminBearer scheme %+v", s)
	}
	if len(doc.Security) != 1 || doc.Security[0]["adminBearer"] == nil {
		t.Errorf("global security %v, want adminBearer", doc.Security)
	}
	if s := doc.Components.SecuritySchemes["adminBasic"]; s.Type != "http" || s.Scheme != "basic" {
		t.Errorf("adminBasic scheme %+v", s)
	}
	leastRole := map[credentials.Permission]credentials.Role{credentials.Read: credentials.RoleReader,
		credentials.Write: credentials.RoleWriter, credentials.Export: credentials.RoleExporter, credentials.Admin: credentials.RoleAdmin,
		credentials.SPEKE: credentials.RolePackager}
	env := newEnv(t, nil)
	registerSiblings(t, env.Plane)
	want := map[string]credentials.Role{}
	for _, op := range env.Plane.Operations() {
		want[op.Name] = leastRole[op.Perm]
	}
	documented := map[string]credentials.Role{}
	ids := map[string]bool{}
	for _, d := range ops {
		where := d.method + " " + d.path
		if d.op.OperationID == "" || ids[d.op.OperationID] {
			t.Errorf("%s: operationId %q missing or repeated", where, d.op.OperationID)
		}
		ids[d.op.OperationID] = true
		if d.op.Description == "" || len(d.op.Responses) == 0 {
			t.Errorf("%s: no description or no responses", where)
		}
		for _, seg := range strings.Split(d.path, "/") {
			name, ok := strings.CutPrefix(seg, "{")
			if !ok {
				continue
			}
			name = strings.TrimSuffix(name, "}")
			if !slices.ContainsFunc(d.params, func(p openAPIParameter) bool {
				return p.Name == name && p.In == "path" && p.Required && p.Example != nil
			}) {
				t.Errorf("%s: path parameter %s is not declared (required, with an example)", where, name)
			}
		}
		api := strings.HasPrefix(d.path, "/api/")
		spekePath := strings.HasPrefix(d.path, "/speke/")
		switch {
		case api && d.op.Security != nil:
			t.Errorf("%s: an /api/ operation must keep the global bearer security", where)
		case spekePath && (len(d.op.Security) != 2 || d.op.Security[0]["adminBearer"] == nil || d.op.Security[1]["adminBasic"] == nil):
			t.Errorf("%s: a /speke/ operation takes bearer or basic: %v", where, d.op.Security)
		case spekePath:
			api = true
		case !api && (d.op.Security == nil || len(d.op.Security) != 0):
			t.Errorf("%s: a probe needs no credential: want \"security\": []", where)
		case api && len(d.op.AdminOperations) == 0:
			t.Errorf("%s: no x-admin-operations", where)
		case !api && len(d.op.AdminOperations) != 0:
			t.Errorf("%s: x-admin-operations on a route without credentials", where)
		}
		for _, ao := range d.op.AdminOperations {
			if _, ok := want[ao.Name]; !ok {
				t.Errorf("%s: unknown operation %q", where, ao.Name)
			}
			if ao.Role != want[ao.Name] {
				t.Errorf("%s: %s documented for role %q, access.go needs %q", where, ao.Name, ao.Role, want[ao.Name])
			}
			if !strings.Contains(d.op.Description, ao.Name) || !strings.Contains(d.op.Description, string(ao.Role)) {
				t.Errorf("%s: the description does not name %s and its role %s", where, ao.Name, ao.Role)
			}
			documented[ao.Name] = ao.Role
		}
	}
	for name := range want {
		if _, ok := documented[name]; !ok {
			t.Errorf("operation %s (access.go) is documented nowhere", name)
		}
	}
}

// TestOpenAPIRolesMatchServer sends every documented /api/ and /speke/
// operation with a credential of each role: a role below the documented
// one is refused with 403 role_insufficient and audited under the
// documented operation; any other is let through. So the packager role is
// refused every /api/ operation, and only packager and admin reach SPEKE.
func TestOpenAPIRolesMatchServer(t *testing.T) {
	_, ops := loadOpenAPI(t)
	env, _ := newRealEnv(t, nil)
	registerSiblings(t, env.Plane)
	secrets := map[credentials.Role]string{credentials.RoleReader: secretReader, credentials.RoleWriter: secretWriter,
		credentials.RoleExporter: secretExporter, credentials.RoleAdmin: secretAdmin, credentials.RolePackager: admintest.SecretPackager}
	// GET /api/openapi.json writes no audit record when it succeeds.
	unauditedSuccess := map[string]bool{"openapi.get": true}
	packagerRefused := 0
	for _, d := range ops {
		if !guarded(d.path) {
			continue
		}
		target := d.path
		for _, p := range d.params {
			if p.In == "path" {
				target = strings.ReplaceAll(target, "{"+p.Name+"}", strings.ReplaceAll(p.Example.(string), "/", "%2F"))
			}
		}
		for _, ao := range d.op.AdminOperations {
			u := target
			if ao.Query != "" {
				u += "?" + ao.Query
			}
			for _, role := range []credentials.Role{credentials.RoleReader, credentials.RoleWriter, credentials.RoleExporter, credentials.RoleAdmin, credentials.RolePackager} {
				where := d.method + " " + u + " as " + string(role)
				r := env.do(t, d.method, u, secrets[role], "")
				granted := role.Permissions()&ao.Role.Permissions() == ao.Role.Permissions()
				if granted && (r.status == http.StatusForbidden || r.status >= 500) {
					t.Errorf("%s: %d %s, want the operation let through", where, r.status, r.body)
				}
				switch {
				case granted:
				case strings.HasPrefix(d.path, "/speke/"):
					// SPEKE's refusals are plain text.
					if want := "this credential's role (" + string(role) + ") does not allow speke.v2: it needs the role packager or admin\n"; r.status != http.StatusForbidden || string(r.body) != want {
						t.Errorf("%s: %d %s, want 403 in plain text", where, r.status, r.body)
					}
				case r.status != http.StatusForbidden || r.problem(t).Reason != reasonRole:
					t.Errorf("%s: %d %s, want 403 role_insufficient", where, r.status, r.body)
				}
				if !granted && role == credentials.RolePackager {
					packagerRefused++
				}
				id := r.header.Get("X-Request-Id")
				var n int
				for _, rec := range auditLines(t, env.audit.String()) {
					if rec["request_id"] != id {
						continue
					}
					n++
					if rec["operation"] != ao.Name {
						t.Errorf("%s: audited as %v, documented as %s", where, rec["operation"], ao.Name)
					}
				}
				if n == 0 && !(granted && unauditedSuccess[ao.Name]) {
					t.Errorf("%s: no audit record", where)
				}
			}
		}
	}
	if packagerRefused < 20 {
		t.Errorf("the packager was refused only %d operations", packagerRefused)
	}
}
