package amsapi

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
)

// linkBody is the body of POST /api/Assets('A')/$links/ContentKeys: the
// URI of the ContentKey to associate, as OData writes a link.
type linkBody struct {
	URI string `json:"uri"`
}

// linkedKeyID reads the KID of a link's uri: an absolute or relative URI
// whose last segment is ContentKeys('<KID>'), raw or percent-encoded
// (https://media.windows.net/api/ContentKeys('nb%3Akid%3AUUID%3A...')).
func linkedKeyID(uri string) (keystore.KeyID, error) {
	bad := plane.Invalid("invalid_uri", "field \"uri\" must be the URI of a ContentKey, such as https://media.windows.net/api/ContentKeys('nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f')")
	u, err := url.Parse(uri)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return keystore.KeyID{}, bad
	}
	raw := u.EscapedPath()
	seg := raw[strings.LastIndexByte(raw, '/')+1:]
	if !strings.HasPrefix(unescape(seg), odataContentKeys+"(") {
		return keystore.KeyID{}, bad
	}
	key, err := ams.ParseODataKey(seg, odataContentKeys)
	if err != nil {
		return keystore.KeyID{}, bad
	}
	return keystore.ParseKeyID(key)
}

// link serves POST /api/Assets('ASSETID')/$links/ContentKeys with
// {"uri": ".../ContentKeys('KID')"}: the key now belongs to the asset too
// (GET /api/Assets('ASSETID')/ContentKeys lists it), as AMS associated a
// content key with an asset. Linking it again changes nothing. A deleted
// key cannot be linked. Answers 204.
func (a *api) link(c *plane.Call) (plane.Answer, error) {
	asset, err := assetOf(c)
	if err != nil {
		return plane.Answer{}, err
	}
	var b linkBody
	if err := decodeBody(c, &b, `the body is {"uri": "<the ContentKey's URI>"}`); err != nil {
		return plane.Answer{}, err
	}
	if b.URI == "" {
		return plane.Answer{}, plane.Invalid("missing_field", "field \"uri\" is required: the URI of the ContentKey to link, .../ContentKeys('nb:kid:UUID:<uuid>')")
	}
	id, err := linkedKeyID(b.URI)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(id)
	if err != nil {
		return plane.Answer{}, err
	}
	if _, err := keys.Link(c.Context(), id, asset); err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.NoContent(http.StatusNoContent), nil
}

// unlink serves DELETE /api/Assets('ASSETID')/$links/ContentKeys('KID'):
// the key no longer belongs to the asset (whether it was created with it
// or linked); the key itself is untouched. A key that does not belong to
// the asset is 404 not_linked. Answers 204.
func (a *api) unlink(c *plane.Call) (plane.Answer, error) {
	asset, err := assetOf(c)
	if err != nil {
		return plane.Answer{}, err
	}
	id, err := contentKeyID(c)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(id)
	if err != nil {
		return plane.Answer{}, err
	}
	m, err := keys.Metadata(c.Context(), id)
	if err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	if !slices.Contains(m.Assets, asset) {
		return plane.Answer{}, &plane.RequestError{Status: http.StatusNotFound, Reason: "not_linked",
			Detail: "the ContentKey is not linked to this asset"}
	}
	if _, err := keys.Unlink(c.Context(), id, asset); err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.NoContent(http.StatusNoContent), nil
}
