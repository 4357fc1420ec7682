package amsapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
)

// The routes the OData key segments are rewritten to (see preRoute): the
// key travels as an ordinary route parameter.
const (
	contentKeyRoute = "/api/ContentKeys/:id"
	assetRoute      = "/api/Assets/:assetId/ContentKeys"
	// linksRoute is /api/Assets('A')/$links/ContentKeys; a link's own
	// path, $links/ContentKeys('K'), is linksRoute/K.
	linksRoute = "/api/Assets/:assetId/$links/ContentKeys"
	// countRoute is /api/ContentKeys/$count: a path of its own, since
	// /api/ContentKeys/X is where ContentKeys('X') goes.
	countRoute = "/api/$count/ContentKeys"
)

// malformed is the route parameter of a key segment that is not well
// formed: a lone "%" is never the escaped form of a key, so no key
// produces it, and clients cannot send it (preRoute moves their direct
// uses of the routes away).
const malformed = "%"

// unrouted prefixes the client paths that spell a rewritten route directly
// (/api/ContentKeys/x): they answer as an unknown path, as AMS did.
const unrouted = "/api/-"

// preRoute rewrites the AMS spellings of admin paths into the routes
// above, before routing, so the handlers read an ordinary parameter:
//
//	/API/...                               → /api/... (the AMS documentation's spelling)
//	/api/ContentKeys('K')[/rest]           → /api/ContentKeys/K[/rest]
//	/api/ContentKeys/$count                → /api/$count/ContentKeys
//	/api/Assets('A')/ContentKeys[/$count]  → /api/Assets/A/ContentKeys[/$count]
//	/api/Assets('A')/$links/ContentKeys    → /api/Assets/A/$links/ContentKeys
//	/api/Assets('A')/$links/ContentKeys('K') → /api/Assets/A/$links/ContentKeys/K
//
// The key segment may be raw or percent-encoded, in whole or in part; it is
// parsed once here (ams.ParseODataKey) and its value escaped into one path
// segment. A segment that starts like a key segment but is not well formed
// becomes the parameter malformed, which the handler refuses with 400
// invalid_odata_key after the credential and the role are checked. The
// first segment after /api/ is looked at, and the ContentKeys('K') of a
// $links path; "$" may arrive percent-encoded.
func preRoute(u *url.URL) {
	raw := u.EscapedPath()
	if rest, ok := strings.CutPrefix(raw, "/API/"); ok {
		raw = "/api/" + rest
	}
	rest, ok := strings.CutPrefix(raw, "/api/")
	if !ok {
		setPath(u, raw)
		return
	}
	seg, tail, hasTail := strings.Cut(rest, "/")
	if hasTail {
		tail = "/" + tail
	}
	name := seg
	if d, err := url.PathUnescape(seg); err == nil {
		name = d
	}
	if strings.HasPrefix(name, "$") {
		raw = unrouted + "/" + rest // the internal $count route
	}
	for _, set := range []string{odataContentKeys, odataAssets} {
		switch {
		case strings.HasPrefix(name, set+"("):
			key, err := ams.ParseODataKey(seg, set)
			param := url.PathEscape(key)
			if err != nil {
				param = malformed
			}
			if set == odataAssets {
				tail = linksTail(tail)
			}
			raw = "/api/" + set + "/" + param + tail
		case name == odataContentKeys && unescape(tail) == "/$count":
			raw = countRoute
		case name == set && hasTail:
			raw = unrouted + "/" + rest
		}
	}
	setPath(u, raw)
}

// linksTail rewrites the rest of an Assets('A') path: $count and
// $links/ContentKeys are spelled with a plain "$", and a link's
// ContentKeys('K') becomes ContentKeys/K like the entity's.
func linksTail(tail string) string {
	switch t := unescape(tail); t {
	case "/ContentKeys/$count", "/$links/ContentKeys":
		return t
	}
	parts := strings.Split(tail, "/") // "", "$links", "ContentKeys('K')"
	if len(parts) != 3 || unescape(parts[1]) != "$links" || !strings.HasPrefix(unescape(parts[2]), odataContentKeys+"(") {
		return tail
	}
	key, err := ams.ParseODataKey(parts[2], odataContentKeys)
	param := url.PathEscape(key)
	if err != nil {
		param = malformed
	}
	return "/$links/" + odataContentKeys + "/" + param
}

// unescape is s percent-decoded, or s when it is not a valid encoding.
func unescape(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// setPath sets u's path from its escaped form. Path is the unescaped form
// where one exists; routing uses RawPath, which keeps an escaped "/" inside
// a key one segment.
func setPath(u *url.URL, raw string) {
	if raw == u.EscapedPath() {
		return
	}
	u.RawPath = raw
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path = p
	} else {
		u.Path = raw
	}
}

// odataKey is the key of the route's OData segment (parameter name), false
// when the segment was not well formed.
func odataKey(c *plane.Call, name string) (string, bool) {
	raw := c.RawParam(name)
	if raw == malformed {
		return "", false
	}
	v, err := url.PathUnescape(raw)
	return v, err == nil
}

// contentKeyID is the KID of a ContentKeys('...') route.
func contentKeyID(c *plane.Call) (keystore.KeyID, error) {
	key, ok := odataKey(c, "id")
	if !ok {
		return keystore.KeyID{}, plane.Invalid("invalid_odata_key",
			"the path segment must be ContentKeys('nb:kid:UUID:<uuid>'), raw or percent-encoded, with a quote inside the key written twice")
	}
	return keystore.ParseKeyID(key)
}

// verbose reports whether the request asks for OData verbose JSON.
func verbose(c *plane.Call) bool { return isVerbose(c.Request()) }

func isVerbose(r *http.Request) bool {
	for _, v := range [...]string{r.Header.Get("Accept"), r.Header.Get("Content-Type")} {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(v, " ", "")), "odata=verbose") {
			return true
		}
	}
	return false
}

// Answers are plain JSON (application/json, OData "JSON light" without
// odata.metadata): an entity is an object, a collection is
// {"value":[...]}, a function's result is {"value":...}. When the request's
// Accept or Content-Type asks for odata=verbose, answers use the OData
// verbose wrapper instead: {"d":{...entity, "__metadata":{...}}},
// {"d":{"results":[...]}} and {"d":{"FunctionName":...}}. Errors are the
// admin plane's problem documents, or OData errors when the request asks
// for OData JSON (see odataError).

// verboseType is the media type of a verbose answer.
const verboseType = "application/json;odata=verbose;charset=utf-8"

// answer answers v, wrapped as {"d": v} for a verbose request.
func answer(c *plane.Call, status int, v any) plane.Answer {
	if verbose(c) {
		return plane.JSON(status, map[string]any{"d": v}).WithType(verboseType)
	}
	return plane.JSON(status, v)
}

// function answers a function returning a string: {"value":"..."}, or
// verbose {"d":{"NAME":"..."}}.
func function(c *plane.Call, name, value string) plane.Answer {
	if verbose(c) {
		return answer(c, http.StatusOK, map[string]string{name: value})
	}
	return plane.JSON(http.StatusOK, map[string]string{"value": value})
}
