package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// This file is the Azure Media Services (AMS) v2 compatibility surface: the
// ContentKey entity set and the functions around it, in the shapes of the
// AMS REST API, for teams moving off AMS with their own tooling.
//
// Answers are plain JSON (application/json, OData "JSON light" without
// odata.metadata): an entity is an object, a collection is
// {"value":[...]}, a function's result is {"value":...}. When the request's
// Accept or Content-Type asks for odata=verbose, answers use the OData
// verbose wrapper instead: {"d":{...entity, "__metadata":{...}}},
// {"d":{"results":[...]}} and {"d":{"FunctionName":...}}. Errors are the
// admin plane's problem documents in either case.
//
// Security invariants: no answer carries key material, not even
// encrypted (EncryptedContentKey is always null); the checksum is
// answered, as AMS did (it is also public in every PlayReady header). The
// decrypted content key lives only in local variables that are cleared
// (best effort) before the handler returns.

// OData names.
const (
	odataContentKeys   = "ContentKeys"
	odataAssets        = "Assets"
	amsContentKeyType  = "Microsoft.Cloud.Media.Vod.Rest.Data.Models.ContentKey"
	amsMaxAuthPolicyID = 4000 // the AMS Edm.String maximum
)

// Paging of the AMS collections ($top, $skip).
const (
	amsMaxTop  = 1000
	amsMaxSkip = 100000
)

// amsCreateFields are the members POST /api/ContentKeys accepts. Created,
// LastModified and __metadata are read-only members a client may send back
// from an entity it read; they are ignored.
var amsCreateFields = []string{"Id", "ContentKeyType", "EncryptedContentKey", "Name", "ProtectionKeyId",
	"ProtectionKeyType", "Checksum", "AuthorizationPolicyId", "Created", "LastModified", "__metadata"}

// errNoProtection answers the routes that need the protection certificate
// when the server has none.
var errNoProtection = &requestError{status: http.StatusNotImplemented, reason: "protection_key_not_configured",
	detail: "the server has no RSA protection certificate for the AMS ContentKey API: start the server with --protection-cert and --protection-key"}

// amsContentKey is the AMS v2 ContentKey entity as this server answers it.
type amsContentKey struct {
	Metadata       *odataMetadata `json:"__metadata,omitempty"` // verbose answers only
	ID             string         `json:"Id"`
	Created        string         `json:"Created"`
	LastModified   string         `json:"LastModified"`
	ContentKeyType int            `json:"ContentKeyType"`
	// EncryptedContentKey is always null: key material, even encrypted,
	// never leaves through this API.
	EncryptedContentKey *string `json:"EncryptedContentKey"`
	Name                string  `json:"Name"`
	// ProtectionKeyId is the thumbprint of the server's protection
	// certificate (null when none is configured): which certificate a key
	// was sent under is not stored.
	ProtectionKeyID   *string `json:"ProtectionKeyId"`
	ProtectionKeyType int     `json:"ProtectionKeyType"`
	Checksum          string  `json:"Checksum"`
	// AuthorizationPolicyId is not stored: null, except in the answer to
	// the create that sent it.
	AuthorizationPolicyID *string `json:"AuthorizationPolicyId"`
}

type odataMetadata struct {
	URI  string `json:"uri"`
	Type string `json:"type"`
}

// amsID is a KID as AMS spelled a ContentKey Id.
func amsID(id keystore.KeyID) string { return keystore.AMSKeyIDPrefix + id.String() }

// amsEntityPath is the path of a ContentKey entity, percent-encoded as AMS
// wrote its Location headers.
func amsEntityPath(id keystore.KeyID) string {
	return "/api/" + odataContentKeys + "('nb%3Akid%3AUUID%3A" + id.String() + "')"
}

// amsEntity describes k; checksum is its AMS checksum.
func (s *server) amsEntity(c echo.Context, k *keystore.Key, checksum string) amsContentKey {
	e := amsContentKey{
		ID:             amsID(k.ID),
		Created:        k.Created.UTC().Format(time.RFC3339Nano),
		LastModified:   k.Updated.UTC().Format(time.RFC3339Nano),
		ContentKeyType: int(k.Type),
		Name:           k.Name,
		Checksum:       checksum,
	}
	if s.protectionID != "" {
		id := s.protectionID
		e.ProtectionKeyID = &id
	}
	if odataVerbose(c) {
		e.Metadata = &odataMetadata{URI: amsEntityPath(k.ID), Type: amsContentKeyType}
	}
	return e
}

// odataVerbose reports whether the request asks for OData verbose JSON.
func odataVerbose(c echo.Context) bool {
	h := c.Request().Header
	for _, v := range [...]string{h.Get(echo.HeaderAccept), h.Get(echo.HeaderContentType)} {
		if strings.Contains(strings.ToLower(strings.ReplaceAll(v, " ", "")), "odata=verbose") {
			return true
		}
	}
	return false
}

// odataAnswer writes v as plain JSON, or wrapped as {"d": v} with the
// verbose media type.
func odataAnswer(c echo.Context, status int, v any) error {
	if odataVerbose(c) {
		c.Response().Header().Set(echo.HeaderContentType, "application/json;odata=verbose;charset=utf-8")
		return c.JSON(status, map[string]any{"d": v})
	}
	return c.JSON(status, v)
}

// odataCollection answers a collection: {"value":[...]}, or verbose
// {"d":{"results":[...]}}.
func odataCollection(c echo.Context, items []amsContentKey) error {
	if items == nil {
		items = []amsContentKey{}
	}
	if odataVerbose(c) {
		return odataAnswer(c, http.StatusOK, map[string]any{"results": items})
	}
	return c.JSON(http.StatusOK, map[string]any{"value": items})
}

// odataFunction answers a function returning a string: {"value":"..."}, or
// verbose {"d":{"NAME":"..."}}.
func odataFunction(c echo.Context, name, value string) error {
	if odataVerbose(c) {
		return odataAnswer(c, http.StatusOK, map[string]string{name: value})
	}
	return c.JSON(http.StatusOK, map[string]string{"value": value})
}

// isODataSegment reports whether segment (raw or percent-encoded) is
// entitySet(...), so that its handler owns it even when the key inside is
// malformed.
func isODataSegment(segment, entitySet string) bool {
	if u, err := url.PathUnescape(segment); err == nil {
		segment = u
	}
	return strings.HasPrefix(segment, entitySet+"(")
}

// noRoute answers a one-segment /api/ path that no AMS handler owns as the
// router would have: 405 for a static route's path, else 404.
func (s *server) noRoute(segment string) error {
	if s.staticAPI[segment] {
		return echo.ErrMethodNotAllowed
	}
	return echo.ErrNotFound
}

// amsContentKeyRoute serves a route under /api/ContentKeys('ID'): it checks
// that the segment is a ContentKeys key segment, then the role for op, then
// parses the KID and calls h.
func (s *server) amsContentKeyRoute(op operation, h func(echo.Context, keystore.KeyID) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		seg := c.Param("contentKeySegment")
		if !isODataSegment(seg, odataContentKeys) {
			return s.noRoute(seg)
		}
		return s.allow(op)(func(c echo.Context) error {
			key, err := ams.ParseODataKey(seg, odataContentKeys)
			if err != nil {
				return s.conclude(c, nil, badRequest("invalid_odata_key",
					"the path segment must be ContentKeys('nb:kid:UUID:<uuid>'), raw or percent-encoded, with a quote inside the key written twice"), false)
			}
			id, err := keystore.ParseKeyID(key)
			if err != nil {
				return s.conclude(c, nil, err, false)
			}
			return h(c, id)
		})(c)
	}
}

// amsAssetRoute serves GET /api/Assets('ASSETID')/ContentKeys.
func (s *server) amsAssetRoute(h func(echo.Context, string) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		seg := c.Param("assetSegment")
		if !isODataSegment(seg, odataAssets) {
			return s.noRoute(seg)
		}
		return s.allow(opAMSAssetList)(func(c echo.Context) error {
			asset, err := ams.ParseODataKey(seg, odataAssets)
			if err != nil {
				return s.conclude(c, nil, badRequest("invalid_odata_key",
					"the path segment must be Assets('<asset id>'), raw or percent-encoded, with a quote inside the ID written twice"), false)
			}
			if err := keystore.ValidateAsset(asset); err != nil {
				return s.conclude(c, nil, err, false)
			}
			return h(c, asset)
		})(c)
	}
}

// readAMSObject reads a JSON object body; a body that is an OData verbose
// wrapper {"d":{...}} is unwrapped.
func readAMSObject(c echo.Context) (map[string]json.RawMessage, error) {
	fields, err := readObject(c, maxKeyBody)
	if err != nil {
		return nil, err
	}
	if raw, ok := fields["d"]; ok && len(fields) == 1 {
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil && inner != nil {
			return inner, nil
		}
	}
	return fields, nil
}

// amsInt reads an Edm.Int32 member: a JSON integer, or a string of one (the
// AMS REST samples send both). Absent or null reports present false.
func amsInt(fields map[string]json.RawMessage, name string) (n int, present bool, err error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	raw = bytes.TrimSpace(raw)
	bad := badRequest("invalid_"+name, "field %q must be an integer (a number, or a string holding one)", name)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, true, bad
		}
		if n, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
			return 0, true, bad
		}
		return n, true, nil
	}
	if json.Unmarshal(raw, &n) != nil {
		return 0, true, bad
	}
	return n, true, nil
}

// amsCreateRequest is a checked POST /api/ContentKeys body.
type amsCreateRequest struct {
	id              keystore.KeyID
	typ             keystore.ContentKeyType
	encrypted       string
	protectionKeyID string
	checksum        string
	name            string
	authPolicyID    *string
}

// parseAMSCreate checks the syntax of POST /api/ContentKeys. Id,
// EncryptedContentKey, ProtectionKeyId and Checksum are required;
// ContentKeyType defaults to 0 (CommonEncryption, the AMS default) and
// ProtectionKeyType to 0. Nothing here needs the protection key.
func parseAMSCreate(c echo.Context) (amsCreateRequest, error) {
	var r amsCreateRequest
	fields, err := readAMSObject(c)
	if err != nil {
		return r, err
	}
	for name := range fields {
		if !slices.Contains(amsCreateFields, name) {
			return r, badRequest("unknown_field", "unknown field %q: a ContentKey has %s", truncate(name, 64), strings.Join(amsCreateFields, ", "))
		}
	}
	required := func(name, what string) (string, error) {
		v, err := stringField(fields, name)
		if err == nil && v == "" {
			err = badRequest("missing_field", "field %q is required: %s", name, what)
		}
		return v, err
	}
	id, err := required("Id", "the KID as nb:kid:UUID:<uuid>")
	if err != nil {
		return r, err
	}
	if r.id, err = keystore.ParseKeyID(id); err != nil {
		return r, err
	}
	n, present, err := amsInt(fields, "ContentKeyType")
	if err != nil {
		return r, err
	}
	r.typ = keystore.ContentKeyType(n) // 0, CommonEncryption, when absent
	if present && !r.typ.Valid() {
		return r, badRequest("invalid_ContentKeyType", "field \"ContentKeyType\" must be 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption (3, UrlEncryption, is internal to AMS)")
	}
	// ProtectionKeyType: the AMS reference lists 0 (X509CertificateThumbprint)
	// only, but its own sample request sends 1; both mean the thumbprint.
	if n, _, err = amsInt(fields, "ProtectionKeyType"); err != nil {
		return r, err
	}
	if n != 0 && n != 1 {
		return r, badRequest("invalid_ProtectionKeyType", "field \"ProtectionKeyType\" must be 0 (X509CertificateThumbprint); 1 is accepted as the same")
	}
	if r.encrypted, err = required("EncryptedContentKey", "the 16-byte content key encrypted with RSA-OAEP (SHA-1) to the certificate of GET /api/GetProtectionKey, in standard base64"); err != nil {
		return r, err
	}
	if r.protectionKeyID, err = required("ProtectionKeyId", "the thumbprint from GET /api/GetProtectionKeyId"); err != nil {
		return r, err
	}
	if r.checksum, err = required("Checksum", "the base64 of the first 8 bytes of AES-128-ECB(content key, KID in Guid.ToByteArray() order)"); err != nil {
		return r, err
	}
	if r.name, err = stringField(fields, "Name"); err != nil {
		return r, err
	}
	if err := checkName(r.name); err != nil {
		return r, err
	}
	if raw, ok := fields["AuthorizationPolicyId"]; ok && !isNull(raw) {
		v, err := stringField(fields, "AuthorizationPolicyId")
		if err != nil {
			return r, err
		}
		if len(v) > amsMaxAuthPolicyID || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return r, badRequest("invalid_AuthorizationPolicyId", "field \"AuthorizationPolicyId\" must be text of at most %d bytes", amsMaxAuthPolicyID)
		}
		r.authPolicyID = &v
	}
	return r, nil
}

// amsCreate serves POST /api/ContentKeys: it decrypts EncryptedContentKey
// with the protection key, checks Checksum against the decrypted key and
// the Id, and stores the key (creation method Import). A KID already
// stored is 409, whatever key it holds. AuthorizationPolicyId is accepted
// and echoed in this answer but not stored.
func (s *server) amsCreate(c echo.Context) error {
	r, err := parseAMSCreate(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	kids := []keystore.KeyID{r.id}
	if s.protectionKey == nil {
		return s.conclude(c, kids, errNoProtection, false)
	}
	if !strings.EqualFold(strings.TrimSpace(r.protectionKeyID), s.protectionID) {
		return s.conclude(c, kids, badRequest("unknown_protection_key",
			"ProtectionKeyId is not the thumbprint of this server's protection certificate: get it from GET /api/GetProtectionKeyId and encrypt to the certificate of GET /api/GetProtectionKey"), false)
	}
	value, err := ams.DecryptContentKey(s.protectionKey, r.encrypted)
	defer clear(value[:])
	switch {
	case errors.Is(err, ams.ErrMalformedEncryptedKey):
		err = badRequest("invalid_EncryptedContentKey", "field \"EncryptedContentKey\" must be standard base64 of at most %d characters", ams.MaxEncryptedContentKeyLen)
	case errors.Is(err, ams.ErrContentKeyLength):
		err = badRequest("invalid_content_key_length", "the decrypted content key is not 16 bytes: only AES-128 content keys are supported")
	case err != nil:
		err = badRequest("cannot_decrypt", "EncryptedContentKey cannot be decrypted with the protection key: encrypt the content key with RSA-OAEP (SHA-1 for the hash and MGF1, empty label) to the certificate of GET /api/GetProtectionKey")
	case value == [16]byte{}:
		err = badRequest("invalid_key", "an all-zero key is refused: it is not a key")
	case playready.VerifyChecksum(value, r.id, r.checksum) != nil:
		err = badRequest("checksum_mismatch", "Checksum does not match the decrypted content key and Id: it must be the base64 of the first 8 bytes of AES-128-ECB(content key, KID in Guid.ToByteArray() byte order); nothing was stored")
	}
	if err != nil {
		return s.conclude(c, kids, err, false)
	}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	stored, err := s.keys.Create(c.Request().Context(), keystore.Key{ID: r.id, Value: value, Name: r.name, Type: r.typ, Method: keystore.CreatedImport})
	clear(stored.Value[:])
	if err != nil {
		err = &keyError{id: r.id, err: err}
	}
	if err := s.conclude(c, kids, err, true); err != nil {
		return err
	}
	e := s.amsEntity(c, &stored, playready.Checksum(value, r.id))
	e.AuthorizationPolicyID = r.authPolicyID
	c.Response().Header().Set(echo.HeaderLocation, amsEntityPath(r.id))
	return odataAnswer(c, http.StatusCreated, e)
}

// amsLiveEntity reads the live key id and describes it with its checksum.
// A deleted key is not found here: AMS had no soft delete.
func (s *server) amsLiveEntity(c echo.Context, id keystore.KeyID) (amsContentKey, error) {
	k, err := s.keys.Get(c.Request().Context(), id)
	defer clear(k.Value[:])
	if err != nil {
		return amsContentKey{}, &keyError{id: id, err: err}
	}
	return s.amsEntity(c, &k, playready.Checksum(k.Value, k.ID)), nil
}

// amsGet serves GET /api/ContentKeys('ID').
func (s *server) amsGet(c echo.Context, id keystore.KeyID) error {
	if err := odataQueryOptions(c, false); err != nil {
		return s.conclude(c, nil, err, false)
	}
	e, err := s.amsLiveEntity(c, id)
	if err := s.conclude(c, []keystore.KeyID{id}, err, false); err != nil {
		return err
	}
	return odataAnswer(c, http.StatusOK, e)
}

// amsDelete serves DELETE /api/ContentKeys('ID'): a soft delete, as
// DELETE /api/keys/{kid} (the key is no longer delivered, and can be
// restored with POST /api/keys/{kid}/restore until it is purged). A key
// already deleted is 404, as it was in AMS. Answers 204.
func (s *server) amsDelete(c echo.Context, id keystore.KeyID) error {
	kids := []keystore.KeyID{id}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	ctx := c.Request().Context()
	k, err := s.keys.Metadata(ctx, id)
	if err == nil && k.Deleted() {
		err = keystore.ErrDeleted
	}
	done := false
	if err == nil {
		_, err = s.keys.Delete(ctx, id)
		done = err == nil
	}
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, kids, err, done); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// amsDeliveryTypes maps the AMS keyDeliveryType to this server's delivery
// types (see DeliveryURL).
var amsDeliveryTypes = map[ams.KeyDeliveryType]string{
	ams.KeyDeliveryPlayReady:    "playready",
	ams.KeyDeliveryBaselineHTTP: "envelope",
	ams.KeyDeliveryWidevine:     "widevine",
	ams.KeyDeliveryFairPlay:     "fairplay",
}

// amsDeliveryURL serves POST /api/ContentKeys('ID')/GetKeyDeliveryUrl with
// {"keyDeliveryType":N}: the URL a player uses, as a string function
// result.
func (s *server) amsDeliveryURL(c echo.Context, id keystore.KeyID) error {
	kids := []keystore.KeyID{id}
	fields, err := readAMSObject(c)
	if err != nil {
		return s.conclude(c, kids, err, false)
	}
	for name := range fields {
		if name != "keyDeliveryType" {
			return s.conclude(c, kids, badRequest("unknown_field", "unknown field %q: the body is {\"keyDeliveryType\":N}", truncate(name, 64)), false)
		}
	}
	n, present, err := amsInt(fields, "keyDeliveryType")
	if err == nil && !present {
		err = badRequest("missing_field", "field \"keyDeliveryType\" is required: 1 PlayReady, 2 BaselineHttp (envelope), 3 Widevine or 4 FairPlay")
	}
	if err != nil {
		return s.conclude(c, kids, err, false)
	}
	t, err := ams.ParseKeyDeliveryType(n)
	if err != nil {
		return s.conclude(c, kids, badRequest("invalid_keyDeliveryType", "field \"keyDeliveryType\" must be 1 PlayReady, 2 BaselineHttp (envelope), 3 Widevine or 4 FairPlay"), false)
	}
	if s.publicURL == "" {
		return s.conclude(c, kids, &requestError{status: http.StatusNotImplemented, reason: "public_url_not_configured",
			detail: "the server has no --public-url: set it to the delivery plane's address as players see it"}, false)
	}
	k, err := s.keys.Metadata(c.Request().Context(), id)
	if err == nil && k.Deleted() {
		err = keystore.ErrDeleted
	}
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, kids, err, false); err != nil {
		return err
	}
	u, _ := DeliveryURL(s.publicURL, amsDeliveryTypes[t], id)
	return odataFunction(c, "GetKeyDeliveryUrl", u)
}

// odataQueryOptions checks the system query options of an AMS GET: $top and
// $skip (only when paged) are understood; any other ($filter, $select,
// $orderby, $expand...) is refused rather than silently ignored.
func odataQueryOptions(c echo.Context, paged bool) error {
	for name := range c.QueryParams() {
		if !strings.HasPrefix(name, "$") {
			continue
		}
		if paged && (name == "$top" || name == "$skip") {
			continue
		}
		if paged {
			return badRequest("unsupported_query_option", "the query option %q is not supported: only $top and $skip are", truncate(name, 32))
		}
		return badRequest("unsupported_query_option", "the query option %q is not supported here", truncate(name, 32))
	}
	return nil
}

// amsPage reads $top (1 to amsMaxTop, default amsMaxTop) and $skip (0 to
// amsMaxSkip, default 0).
func amsPage(c echo.Context) (top, skip int, err error) {
	if err := odataQueryOptions(c, true); err != nil {
		return 0, 0, err
	}
	top = amsMaxTop
	if v := c.QueryParam("$top"); v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 1 || top > amsMaxTop {
			return 0, 0, badRequest("invalid_top", "$top must be a number from 1 to %d", amsMaxTop)
		}
	}
	if v := c.QueryParam("$skip"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 || skip > amsMaxSkip {
			return 0, 0, badRequest("invalid_skip", "$skip must be a number from 0 to %d (page larger stores with GET /api/keys?cursor=)", amsMaxSkip)
		}
	}
	return top, skip, nil
}

// amsCollect walks KIDs page by page (page returns up to maxPage KIDs at
// or after from, in order) and describes the live keys among them, after
// skipping skip live keys, up to top. Deleted keys are left out, as AMS
// had no soft delete.
func (s *server) amsCollect(c echo.Context, top, skip int, page func(ctx context.Context, from keystore.KeyID) ([]keystore.KeyID, error)) ([]amsContentKey, error) {
	ctx := c.Request().Context()
	out := []amsContentKey{}
	var from keystore.KeyID
	for {
		ids, err := page(ctx, from)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if skip > 0 {
				k, err := s.keys.Metadata(ctx, id)
				if err != nil && !errors.Is(err, keystore.ErrNotFound) {
					return nil, err
				}
				if err == nil && !k.Deleted() {
					skip--
				}
				continue
			}
			e, err := s.amsLiveEntity(c, id)
			if errors.Is(err, keystore.ErrNotFound) {
				continue // deleted, or purged since the page was read
			}
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			if len(out) == top {
				return out, nil
			}
		}
		if len(ids) < maxPage {
			return out, nil
		}
		next, ok := ids[len(ids)-1].Next()
		if !ok {
			return out, nil
		}
		from = next
	}
}

// amsList serves GET /api/ContentKeys?$top=&$skip=: the live keys in KID
// order, at most 1000 per request.
func (s *server) amsList(c echo.Context) error {
	top, skip, err := amsPage(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	items, err := s.amsCollect(c, top, skip, func(ctx context.Context, from keystore.KeyID) ([]keystore.KeyID, error) {
		keys, err := s.keys.List(ctx, from, maxPage)
		ids := make([]keystore.KeyID, len(keys))
		for i := range keys {
			ids[i] = keys[i].ID
		}
		return ids, err
	})
	if err := s.conclude(c, nil, err, false); err != nil {
		return err
	}
	return odataCollection(c, items)
}

// amsAssetList serves GET /api/Assets('ASSETID')/ContentKeys: the live keys
// of the asset (see the assets field of the native API).
func (s *server) amsAssetList(c echo.Context, asset string) error {
	top, skip, err := amsPage(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	items, err := s.amsCollect(c, top, skip, func(ctx context.Context, from keystore.KeyID) ([]keystore.KeyID, error) {
		return s.keys.ListAsset(ctx, asset, from, maxPage)
	})
	if err := s.conclude(c, nil, err, false); err != nil {
		return err
	}
	return odataCollection(c, items)
}

// queryParamFold returns the first value of the query parameter name,
// matched without regard to case (AMS documents both contentKeyType and
// ProtectionKeyId spellings).
func queryParamFold(c echo.Context, name string) string {
	for k, v := range c.QueryParams() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// amsProtectionKeyID serves GET /api/GetProtectionKeyId?contentKeyType=N:
// the thumbprint of the protection certificate. The server has one
// certificate for every content key type.
func (s *server) amsProtectionKeyID(c echo.Context) error {
	v := queryParamFold(c, "contentKeyType")
	if v == "" {
		return s.conclude(c, nil, badRequest("missing_parameter", "the query parameter contentKeyType is required: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption, 4 EnvelopeEncryption"), false)
	}
	n, err := strconv.Atoi(v)
	if err != nil || !keystore.ContentKeyType(n).Defined() {
		return s.conclude(c, nil, badRequest("invalid_contentKeyType", "contentKeyType must be an AMS content key type number: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption, 4 EnvelopeEncryption"), false)
	}
	if s.protectionCert == nil {
		return s.conclude(c, nil, errNoProtection, false)
	}
	if err := s.conclude(c, nil, nil, false); err != nil {
		return err
	}
	return odataFunction(c, "GetProtectionKeyId", s.protectionID)
}

// amsProtectionKey serves GET /api/GetProtectionKey?ProtectionKeyId='T':
// the protection certificate, standard base64 of its DER, when T is its
// thumbprint (in any case; quoted as an OData string, or bare); 404 for
// another thumbprint.
func (s *server) amsProtectionKey(c echo.Context) error {
	v := queryParamFold(c, "ProtectionKeyId")
	if v == "" {
		return s.conclude(c, nil, badRequest("missing_parameter", "the query parameter ProtectionKeyId is required: the thumbprint from GET /api/GetProtectionKeyId, in quotes"), false)
	}
	if strings.HasPrefix(v, "'") {
		var err error
		if v, err = ams.ParseODataString(v); err != nil {
			return s.conclude(c, nil, badRequest("invalid_ProtectionKeyId", "ProtectionKeyId must be a thumbprint in single quotes, such as '7D9BB04D9D0A4A24800CADBFEF232689E048F69C'"), false)
		}
	}
	if s.protectionCert == nil {
		return s.conclude(c, nil, errNoProtection, false)
	}
	if !strings.EqualFold(v, s.protectionID) {
		return s.conclude(c, nil, &requestError{status: http.StatusNotFound, reason: "unknown_protection_key",
			detail: "no protection certificate has this thumbprint: GET /api/GetProtectionKeyId gives the current one"}, false)
	}
	if err := s.conclude(c, nil, nil, false); err != nil {
		return err
	}
	return odataFunction(c, "GetProtectionKey", base64.StdEncoding.EncodeToString(s.protectionCert.Raw))
}

// upperAPIPrefix lets AMS clients written from the AMS documentation, which
// spells the prefix /API/, reach the /api/ routes.
func upperAPIPrefix(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if rest, ok := strings.CutPrefix(u.Path, "/API/"); ok {
			u.Path = "/api/" + rest
			if raw, ok := strings.CutPrefix(u.RawPath, "/API/"); ok {
				u.RawPath = "/api/" + raw
			}
		}
		return next(c)
	}
}
