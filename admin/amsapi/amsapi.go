package amsapi

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// Options configures the AMS API.
type Options struct {
	// PublicURL is the delivery plane's base URL as players see it, for
	// GetKeyDeliveryUrl (default: none; it then answers 501
	// public_url_not_configured).
	PublicURL string
	// ProtectionCert and ProtectionKey are the server's RSA protection
	// certificate and its private key: clients encrypt EncryptedContentKey
	// to the certificate (see package ams). Both or neither must be set,
	// and the key must belong to the certificate. Default nil: POST
	// /api/ContentKeys, GET /api/GetProtectionKeyId and GET
	// /api/GetProtectionKey answer 501 protection_key_not_configured.
	ProtectionCert *x509.Certificate
	ProtectionKey  *rsa.PrivateKey
}

// The operations of the AMS API.
var (
	opCreate          = plane.Operation{Name: "ams.contentkeys.create", Perm: credentials.Write, Writes: true}
	opList            = plane.Operation{Name: "ams.contentkeys.list", Perm: credentials.Read}
	opGet             = plane.Operation{Name: "ams.contentkeys.get", Perm: credentials.Read}
	opAssetList       = plane.Operation{Name: "ams.assets.contentkeys.list", Perm: credentials.Read}
	opDelete          = plane.Operation{Name: "ams.contentkeys.delete", Perm: credentials.Write, Writes: true}
	opDeliveryURL     = plane.Operation{Name: "ams.contentkeys.delivery-url", Perm: credentials.Read}
	opProtectionKeyID = plane.Operation{Name: "ams.protection-key-id.get", Perm: credentials.Read}
	opProtectionKey   = plane.Operation{Name: "ams.protection-key.get", Perm: credentials.Read}
	opCount           = plane.Operation{Name: "ams.contentkeys.count", Perm: credentials.Read}
	opAssetCount      = plane.Operation{Name: "ams.assets.contentkeys.count", Perm: credentials.Read}
	opLinkCreate      = plane.Operation{Name: "ams.assets.links.create", Perm: credentials.Write, Writes: true}
	opLinkDelete      = plane.Operation{Name: "ams.assets.links.delete", Perm: credentials.Write, Writes: true}
)

// OData names.
const (
	odataContentKeys   = "ContentKeys"
	odataAssets        = "Assets"
	amsContentKeyType  = "Microsoft.Cloud.Media.Vod.Rest.Data.Models.ContentKey"
	amsMaxAuthPolicyID = 4000 // the AMS Edm.String maximum
	// maxBody caps the body of POST /api/ContentKeys and GetKeyDeliveryUrl.
	maxBody = 64 << 10
	// amsMaxName is the longest Name, in characters (UTF-16 code units, as
	// .NET counts an Edm.String's length): the AMS entity's maximum.
	amsMaxName = 4000
)

// Paging of the AMS collections ($top, $skip), and the page read from the
// store at a time.
const (
	amsMaxTop  = 1000
	amsMaxSkip = 100000
	storePage  = 1000
)

// errNoProtection answers the routes that need the protection certificate
// when the server has none.
var errNoProtection = plane.NotConfigured("protection_key_not_configured",
	"the server has no RSA protection certificate for the AMS ContentKey API: start the server with --protection-cert and --protection-key")

// api serves the AMS API. It holds no key store: its operations reach the
// store through their plane.Call only.
type api struct {
	publicURL      string
	protectionCert *x509.Certificate
	protectionKey  *rsa.PrivateKey
	protectionID   string // ams.ProtectionKeyID(protectionCert); "" when not configured
}

// Register mounts the AMS API on p, with its pre-router (see preRoute).
func Register(p *plane.Plane, o Options) error {
	if p == nil {
		return errors.New("amsapi: no plane")
	}
	if (o.ProtectionCert == nil) != (o.ProtectionKey == nil) {
		return errors.New("amsapi: ProtectionCert and ProtectionKey go together: set both or neither")
	}
	if o.ProtectionCert != nil {
		pub, ok := o.ProtectionCert.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(&o.ProtectionKey.PublicKey) {
			return errors.New("amsapi: ProtectionKey does not belong to ProtectionCert")
		}
	}
	a := &api{publicURL: o.PublicURL, protectionCert: o.ProtectionCert, protectionKey: o.ProtectionKey,
		protectionID: ams.ProtectionKeyID(o.ProtectionCert)}
	p.Rewrite(preRoute)
	p.ErrorBody(odataError)
	p.Handle(http.MethodPost, "/api/ContentKeys", opCreate, a.create)
	p.Handle(http.MethodGet, "/api/ContentKeys", opList, a.list)
	p.Handle(http.MethodGet, countRoute, opCount, a.count)
	p.Handle(http.MethodGet, assetRoute+"/$count", opAssetCount, a.assetCount)
	p.Handle(http.MethodPost, linksRoute, opLinkCreate, a.link)
	p.Handle(http.MethodDelete, linksRoute+"/:id", opLinkDelete, a.unlink)
	p.Handle(http.MethodGet, "/api/GetProtectionKeyId", opProtectionKeyID, a.getProtectionKeyID)
	p.Handle(http.MethodGet, "/api/GetProtectionKey", opProtectionKey, a.getProtectionKey)
	p.Handle(http.MethodGet, contentKeyRoute, opGet, a.get)
	p.Handle(http.MethodDelete, contentKeyRoute, opDelete, a.delete)
	p.Handle(http.MethodPost, contentKeyRoute+"/GetKeyDeliveryUrl", opDeliveryURL, a.deliveryURL)
	p.Handle(http.MethodGet, assetRoute, opAssetList, a.assetList)
	return nil
}

// contentKey is the AMS v2 ContentKey entity as this server answers it.
type contentKey struct {
	Metadata       *odataMetadata `json:"__metadata,omitempty"` // verbose answers only
	ID             string         `json:"Id"`
	Created        odataTime      `json:"Created"`
	LastModified   odataTime      `json:"LastModified"`
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
	// AuthorizationPolicyId is stored as the create sent it; null when it
	// sent none.
	AuthorizationPolicyID *string `json:"AuthorizationPolicyId"`
}

type odataMetadata struct {
	URI  string `json:"uri"`
	Type string `json:"type"`
}

// amsID is a KID as AMS spelled a ContentKey Id.
func amsID(id keystore.KeyID) string { return keystore.AMSKeyIDPrefix + id.String() }

// entityPath is the path of a ContentKey entity, percent-encoded as AMS
// wrote its Location headers.
func entityPath(id keystore.KeyID) string {
	return "/api/" + odataContentKeys + "('nb%3Akid%3AUUID%3A" + id.String() + "')"
}

// entity describes k; checksum is its checksum.
func (a *api) entity(c *plane.Call, k *keystore.Key, checksum string) contentKey {
	v := verbose(c)
	e := contentKey{
		ID:             amsID(k.ID),
		Created:        odataTime{t: k.Created, verbose: v},
		LastModified:   odataTime{t: k.Updated, verbose: v},
		ContentKeyType: int(k.Type),
		Name:           k.Name,
		Checksum:       checksum,
	}
	if k.AuthorizationPolicyID != "" {
		p := k.AuthorizationPolicyID
		e.AuthorizationPolicyID = &p
	}
	if a.protectionID != "" {
		id := a.protectionID
		e.ProtectionKeyID = &id
	}
	if verbose(c) {
		e.Metadata = &odataMetadata{URI: entityPath(k.ID), Type: amsContentKeyType}
	}
	return e
}

// createBody is the body of POST /api/ContentKeys. Created, LastModified
// and __metadata are read-only members a client may send back from an
// entity it read; they are ignored.
type createBody struct {
	ID                    string   `json:"Id"`
	ContentKeyType        odataInt `json:"ContentKeyType"`
	EncryptedContentKey   string   `json:"EncryptedContentKey"`
	Name                  string   `json:"Name"`
	ProtectionKeyID       string   `json:"ProtectionKeyId"`
	ProtectionKeyType     odataInt `json:"ProtectionKeyType"`
	Checksum              string   `json:"Checksum"`
	AuthorizationPolicyID *string  `json:"AuthorizationPolicyId"`

	Created      httpedge.RawJSON `json:"Created"`
	LastModified httpedge.RawJSON `json:"LastModified"`
	Metadata     httpedge.RawJSON `json:"__metadata"`
}

const createMembers = "a ContentKey has Id, ContentKeyType, EncryptedContentKey, Name, ProtectionKeyId, ProtectionKeyType, Checksum, AuthorizationPolicyId, Created, LastModified, __metadata"

// createRequest is a checked POST /api/ContentKeys body.
type createRequest struct {
	id              keystore.KeyID
	typ             keystore.ContentKeyType
	encrypted       string
	protectionKeyID string
	checksum        string
	name            string
	authPolicyID    *string
}

// parseCreate checks the syntax of POST /api/ContentKeys. Id,
// EncryptedContentKey, ProtectionKeyId and Checksum are required;
// ContentKeyType defaults to 0 (CommonEncryption, the AMS default) and
// ProtectionKeyType to 0. Nothing here needs the protection key.
func parseCreate(c *plane.Call) (createRequest, error) {
	var r createRequest
	var b createBody
	if err := decodeBody(c, &b, createMembers); err != nil {
		return r, err
	}
	required := func(v, name, what string) (string, error) {
		if v == "" {
			return "", plane.Invalid("missing_field", "field %q is required: %s", name, what)
		}
		return v, nil
	}
	id, err := required(b.ID, "Id", "the KID as nb:kid:UUID:<uuid>")
	if err != nil {
		return r, err
	}
	if r.id, err = keystore.ParseKeyID(id); err != nil {
		return r, err
	}
	r.typ = keystore.ContentKeyType(b.ContentKeyType.n) // 0, CommonEncryption, when absent
	if b.ContentKeyType.set && !r.typ.Valid() {
		return r, plane.Invalid("invalid_ContentKeyType", "field \"ContentKeyType\" must be 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption (3, UrlEncryption, is internal to AMS)")
	}
	// ProtectionKeyType: the AMS reference lists 0 (X509CertificateThumbprint)
	// only, but its own sample request sends 1; both mean the thumbprint.
	if n := b.ProtectionKeyType.n; n != 0 && n != 1 {
		return r, plane.Invalid("invalid_ProtectionKeyType", "field \"ProtectionKeyType\" must be 0 (X509CertificateThumbprint); 1 is accepted as the same")
	}
	if r.encrypted, err = required(b.EncryptedContentKey, "EncryptedContentKey", "the 16-byte content key encrypted with RSA-OAEP (SHA-1) to the certificate of GET /api/GetProtectionKey, in standard base64"); err != nil {
		return r, err
	}
	if r.protectionKeyID, err = required(b.ProtectionKeyID, "ProtectionKeyId", "the thumbprint from GET /api/GetProtectionKeyId"); err != nil {
		return r, err
	}
	if r.checksum, err = required(b.Checksum, "Checksum", "the base64 of the first 8 bytes of AES-128-ECB(content key, KID in Guid.ToByteArray() order)"); err != nil {
		return r, err
	}
	// The reason stays invalid_name (reasons are never renamed); the text
	// names the member as the AMS entity spells it.
	r.name = b.Name
	if !text(r.name) {
		return r, plane.Invalid("invalid_name", "field \"Name\" must be UTF-8 text without control characters")
	}
	if n := utf16Len(r.name); n > amsMaxName {
		return r, plane.Invalid("invalid_name", "field \"Name\" must be at most %d characters (it has %d)", amsMaxName, n)
	}
	if v := b.AuthorizationPolicyID; v != nil {
		if len(*v) > amsMaxAuthPolicyID || !text(*v) {
			return r, plane.Invalid("invalid_AuthorizationPolicyId", "field \"AuthorizationPolicyId\" must be text of at most %d bytes", amsMaxAuthPolicyID)
		}
		r.authPolicyID = v
	}
	return r, nil
}

// text reports whether s is UTF-8 text without control characters.
func text(s string) bool { return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) }

// create serves POST /api/ContentKeys: it decrypts EncryptedContentKey
// with the protection key, checks Checksum against the decrypted key and
// the Id, and stores the key (creation method Import) with its Name and
// AuthorizationPolicyId. A KID already stored with another key (or type)
// is 409; with the same key and type (a retried create) the answer is 200
// with the stored entity.
func (a *api) create(c *plane.Call) (plane.Answer, error) {
	r, err := parseCreate(c)
	if err != nil {
		return plane.Answer{}, err
	}
	c.Name(r.id)
	if a.protectionKey == nil {
		return plane.Answer{}, errNoProtection
	}
	if !strings.EqualFold(strings.TrimSpace(r.protectionKeyID), a.protectionID) {
		return plane.Answer{}, plane.Invalid("unknown_protection_key",
			"ProtectionKeyId is not the thumbprint of this server's protection certificate: get it from GET /api/GetProtectionKeyId and encrypt to the certificate of GET /api/GetProtectionKey")
	}
	value, err := ams.DecryptContentKey(a.protectionKey, r.encrypted)
	defer clear(value[:])
	switch {
	case errors.Is(err, ams.ErrMalformedEncryptedKey):
		err = plane.Invalid("invalid_EncryptedContentKey", "field \"EncryptedContentKey\" must be standard base64 of at most %d characters", ams.MaxEncryptedContentKeyLen)
	case errors.Is(err, ams.ErrContentKeyLength):
		err = plane.Invalid("invalid_content_key_length", "the decrypted content key is not 16 bytes: only AES-128 content keys are supported")
	case err != nil:
		err = plane.Invalid("cannot_decrypt", "EncryptedContentKey cannot be decrypted with the protection key: encrypt the content key with RSA-OAEP (SHA-1 for the hash and MGF1, empty label) to the certificate of GET /api/GetProtectionKey")
	case value == [16]byte{}:
		err = plane.Invalid("invalid_key", "an all-zero key is refused: it is not a key")
	case keystore.WeakValue(&value):
		err = plane.Invalid("invalid_key", "a key that is one byte repeated is refused: it is not a key")
	case playready.VerifyChecksum(value, r.id, r.checksum) != nil:
		err = plane.Invalid("checksum_mismatch", "Checksum does not match the decrypted content key and Id: it must be the base64 of the first 8 bytes of AES-128-ECB(content key, KID in Guid.ToByteArray() byte order); nothing was stored")
	}
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(r.id)
	if err != nil {
		return plane.Answer{}, err
	}
	status := http.StatusCreated
	k := keystore.Key{ID: r.id, Value: value, Name: r.name, Type: r.typ, Method: keystore.CreatedImport}
	if r.authPolicyID != nil {
		k.AuthorizationPolicyID = *r.authPolicyID
	}
	stored, err := keys.Create(c.Context(), k)
	clear(stored.Value[:])
	if errors.Is(err, keystore.ErrSameKey) {
		// The key asked for is stored already (a retried create): 200
		// with the stored entity.
		status = http.StatusOK
		stored, err = keys.Metadata(c.Context(), r.id)
	}
	if err != nil {
		return plane.Answer{}, plane.OnKey(r.id, err)
	}
	e := a.entity(c, &stored, playready.Checksum(value, r.id))
	return answer(c, status, e).With("Location", entityPath(r.id)), nil
}

// liveEntity reads the live key id and describes it with its checksum. A
// deleted key is not found here: AMS had no soft delete.
func (a *api) liveEntity(c *plane.Call, id keystore.KeyID) (contentKey, error) {
	k, err := c.Keys().Get(c.Context(), id)
	defer clear(k.Value[:])
	if err != nil {
		return contentKey{}, plane.OnKey(id, err)
	}
	return a.entity(c, &k, playready.Checksum(k.Value, k.ID)), nil
}

// get serves GET /api/ContentKeys('ID').
func (a *api) get(c *plane.Call) (plane.Answer, error) {
	id, err := contentKeyID(c)
	if err != nil {
		return plane.Answer{}, err
	}
	q, err := parseQuery(c, entityOptions)
	if err != nil {
		return plane.Answer{}, err
	}
	c.Name(id)
	e, err := a.liveEntity(c, id)
	if err != nil {
		return plane.Answer{}, err
	}
	return answer(c, http.StatusOK, project(e, q.selects)), nil
}

// delete serves DELETE /api/ContentKeys('ID'): a soft delete, as
// DELETE /api/keys/{kid} (the key is no longer delivered, and can be
// restored with POST /api/keys/{kid}/restore until it is purged). A key
// already deleted is 404, as it was in AMS. Answers 204.
func (a *api) delete(c *plane.Call) (plane.Answer, error) {
	id, err := contentKeyID(c)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(id)
	if err != nil {
		return plane.Answer{}, err
	}
	ctx := c.Context()
	k, err := keys.Metadata(ctx, id)
	if err == nil && k.Deleted() {
		err = keystore.ErrDeleted
	}
	if err == nil {
		_, err = keys.Delete(ctx, id)
	}
	if err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.NoContent(http.StatusNoContent), nil
}

// deliveryTypes maps the AMS keyDeliveryType to this server's delivery
// types (see plane.DeliveryURL).
var deliveryTypes = map[ams.KeyDeliveryType]string{
	ams.KeyDeliveryPlayReady:    "playready",
	ams.KeyDeliveryBaselineHTTP: "envelope",
	ams.KeyDeliveryWidevine:     "widevine",
	ams.KeyDeliveryFairPlay:     "fairplay",
}

// deliveryURLBody is the body of GetKeyDeliveryUrl.
type deliveryURLBody struct {
	KeyDeliveryType odataInt `json:"keyDeliveryType"`
}

// deliveryURL serves POST /api/ContentKeys('ID')/GetKeyDeliveryUrl with
// {"keyDeliveryType":N}: the URL a player uses, as a string function
// result.
func (a *api) deliveryURL(c *plane.Call) (plane.Answer, error) {
	id, err := contentKeyID(c)
	if err != nil {
		return plane.Answer{}, err
	}
	c.Name(id)
	var b deliveryURLBody
	if err := decodeBody(c, &b, `the body is {"keyDeliveryType":N}`); err != nil {
		return plane.Answer{}, err
	}
	if !b.KeyDeliveryType.set {
		return plane.Answer{}, plane.Invalid("missing_field", "field \"keyDeliveryType\" is required: 1 PlayReady, 2 BaselineHttp (envelope), 3 Widevine or 4 FairPlay")
	}
	t, err := ams.ParseKeyDeliveryType(b.KeyDeliveryType.n)
	if err != nil {
		return plane.Answer{}, plane.Invalid("invalid_keyDeliveryType", "field \"keyDeliveryType\" must be 1 PlayReady, 2 BaselineHttp (envelope), 3 Widevine or 4 FairPlay")
	}
	if a.publicURL == "" {
		return plane.Answer{}, plane.NotConfigured("public_url_not_configured",
			"the server has no --public-url: set it to the delivery plane's address as players see it")
	}
	k, err := c.Keys().Metadata(c.Context(), id)
	if err == nil && k.Deleted() {
		err = keystore.ErrDeleted
	}
	if err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	u, _ := plane.DeliveryURL(a.publicURL, deliveryTypes[t], id)
	return function(c, "GetKeyDeliveryUrl", u), nil
}

// getProtectionKeyID serves GET /api/GetProtectionKeyId?contentKeyType=N: the
// thumbprint of the protection certificate. The server has one certificate
// for every content key type AMS defines.
func (a *api) getProtectionKeyID(c *plane.Call) (plane.Answer, error) {
	v := c.QueryFold("contentKeyType")
	if v == "" {
		return plane.Answer{}, plane.Invalid("missing_parameter", "the query parameter contentKeyType is required: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption, 4 EnvelopeEncryption")
	}
	n, err := strconv.Atoi(v)
	if err != nil || !keystore.ContentKeyType(n).Defined() {
		return plane.Answer{}, plane.Invalid("invalid_contentKeyType", "contentKeyType must be an AMS content key type number: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption, 4 EnvelopeEncryption")
	}
	if a.protectionCert == nil {
		return plane.Answer{}, errNoProtection
	}
	return function(c, "GetProtectionKeyId", a.protectionID), nil
}

// getProtectionKey serves GET /api/GetProtectionKey?ProtectionKeyId='T': the
// protection certificate, standard base64 of its DER, when T is its
// thumbprint (in any case; quoted as an OData string, or bare); 404 for
// another thumbprint.
func (a *api) getProtectionKey(c *plane.Call) (plane.Answer, error) {
	v := c.QueryFold("ProtectionKeyId")
	if v == "" {
		return plane.Answer{}, plane.Invalid("missing_parameter", "the query parameter ProtectionKeyId is required: the thumbprint from GET /api/GetProtectionKeyId, in quotes")
	}
	if strings.HasPrefix(v, "'") {
		var err error
		if v, err = ams.ParseODataString(v); err != nil {
			return plane.Answer{}, plane.Invalid("invalid_ProtectionKeyId", "ProtectionKeyId must be a thumbprint in single quotes, such as '7D9BB04D9D0A4A24800CADBFEF232689E048F69C'")
		}
	}
	if a.protectionCert == nil {
		return plane.Answer{}, errNoProtection
	}
	if !strings.EqualFold(v, a.protectionID) {
		return plane.Answer{}, &plane.RequestError{Status: http.StatusNotFound, Reason: "unknown_protection_key",
			Detail: "no protection certificate has this thumbprint: GET /api/GetProtectionKeyId gives the current one"}
	}
	return function(c, "GetProtectionKey", base64.StdEncoding.EncodeToString(a.protectionCert.Raw)), nil
}

// odataInt is an Edm.Int32 member: a JSON integer, or a string of one (the
// AMS REST samples send both). Absent or null leaves it unset.
type odataInt struct {
	set bool
	n   int
}

// UnmarshalJSON reads the member; the plane names the member when it
// refuses it.
func (o *odataInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) < 2 || strings.ContainsAny(s[1:len(s)-1], `"\`) {
			return errNotInt
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return errNotInt
	}
	o.set, o.n = true, n
	return nil
}

var errNotInt = errors.New("amsapi: not an integer")

// decodeBody reads a JSON object body into v; a body that is an OData
// verbose wrapper {"d":{...}} is unwrapped first. An Edm.Int32 member that
// is not an integer is 400 invalid_<member>.
func decodeBody(c *plane.Call, v any, members string) error {
	var wrapper struct {
		D httpedge.RawJSON `json:"d"`
	}
	b, err := c.ReadBody(maxBody, "the request body is larger than 65536 bytes")
	if err != nil {
		return err
	}
	if ct := c.Header("Content-Type"); ct != "" {
		if mt := c.MediaType(); mt != "application/json" && mt != "text/json" {
			return &plane.RequestError{Status: http.StatusUnsupportedMediaType, Reason: "unsupported_media_type", Detail: "send the body as application/json"}
		}
	}
	if httpedge.DecodeJSON(b, &wrapper) == nil && bytes.HasPrefix(bytes.TrimSpace(wrapper.D), []byte("{")) {
		b = wrapper.D
	}
	err = httpedge.DecodeJSON(b, v)
	var be *httpedge.BodyError
	if errors.As(err, &be) && errors.Is(err, errNotInt) {
		return plane.Invalid("invalid_"+be.Member, "field %q must be an integer (a number, or a string holding one)", be.Member)
	}
	return plane.BodyError(err, members)
}
