package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/keystore"
)

// Paging limits of the list endpoints.
const (
	defaultPage = 100
	maxPage     = 1000
)

// keyPage is the answer of the list endpoints. NextCursor is absent on
// the last page.
type keyPage struct {
	Keys       []keyMetadata `json:"keys"`
	NextCursor string        `json:"nextCursor,omitempty"`
}

// pageParams reads ?limit= and ?cursor=. A cursor is opaque to clients: it
// is the hex of the first KID of the next page.
func pageParams(c echo.Context) (keystore.KeyID, int, error) {
	limit := defaultPage
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return keystore.KeyID{}, 0, badRequest("invalid_limit", "limit must be a number from 1 to %d", maxPage)
		}
		limit = n
	}
	var from keystore.KeyID
	if s := c.QueryParam("cursor"); s != "" {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != len(from) {
			return keystore.KeyID{}, 0, badRequest("invalid_cursor", "cursor must be a nextCursor value from a previous page")
		}
		copy(from[:], b)
	}
	return from, limit, nil
}

func nextCursor(last keystore.KeyID, n, limit int) string {
	if n < limit {
		return ""
	}
	next, ok := last.Next()
	if !ok {
		return ""
	}
	return hex.EncodeToString(next[:])
}

// listKeys serves GET /api/keys?limit=&cursor=: metadata of every key in
// KID order, deleted ones included. Paging is stable: a key created while
// paging appears if its KID is after the cursor.
func (s *server) listKeys(c echo.Context) error {
	from, limit, err := pageParams(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	keys, err := s.keys.List(c.Request().Context(), from, limit)
	if err := s.conclude(c, nil, err, false); err != nil {
		return err
	}
	page := keyPage{Keys: make([]keyMetadata, len(keys))}
	for i := range keys {
		page.Keys[i] = metadataOf(&keys[i])
	}
	if len(keys) > 0 {
		page.NextCursor = nextCursor(keys[len(keys)-1].ID, len(keys), limit)
	}
	return c.JSON(http.StatusOK, page)
}

// listAssetKeys serves GET /api/assets/{assetId}/keys.
func (s *server) listAssetKeys(c echo.Context) error {
	asset, err := url.PathUnescape(c.Param("asset"))
	if err == nil {
		err = keystore.ValidateAsset(asset)
	}
	if err != nil {
		return s.conclude(c, nil, badRequest("invalid_asset", "the asset ID must be 1 to %d printable characters without spaces", keystore.MaxAssetID), false)
	}
	from, limit, err := pageParams(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	ctx := c.Request().Context()
	ids, err := s.keys.ListAsset(ctx, asset, from, limit)
	page := keyPage{Keys: make([]keyMetadata, 0, len(ids))}
	for _, id := range ids {
		if err != nil {
			break
		}
		var k keystore.Key
		k, err = s.keys.Metadata(ctx, id)
		if errors.Is(err, keystore.ErrNotFound) {
			err = nil // purged since the index was read
			continue
		}
		page.Keys = append(page.Keys, metadataOf(&k))
	}
	if err := s.conclude(c, ids, err, false); err != nil {
		return err
	}
	if len(ids) > 0 {
		page.NextCursor = nextCursor(ids[len(ids)-1], len(ids), limit)
	}
	return c.JSON(http.StatusOK, page)
}

// kidParam parses the {kid} path parameter, percent-encoded or not.
func kidParam(c echo.Context) (keystore.KeyID, error) { return idParam(c, "kid") }

// idParam parses a UUID path parameter, percent-encoded or not (a KID in
// braces may arrive encoded).
func idParam(c echo.Context, name string) (keystore.KeyID, error) {
	raw := c.Param(name)
	if strings.IndexByte(raw, '%') >= 0 {
		if u, err := url.PathUnescape(raw); err == nil {
			raw = u
		}
	}
	return keystore.ParseKeyID(raw)
}

// deleteKey serves DELETE /api/keys/{kid}: a soft delete (the key stops
// being delivered at once and is kept for the retention period), or with
// ?purge=true (role admin) the destruction of a key already deleted.
func (s *server) deleteKey(c echo.Context) error {
	purge := false
	if p := c.QueryParam("purge"); p != "" {
		var err error
		if purge, err = strconv.ParseBool(p); err != nil {
			return s.allow(opKeysDelete)(func(c echo.Context) error {
				return s.conclude(c, nil, badRequest("invalid_purge", "purge must be true or false"), false)
			})(c)
		}
	}
	if purge {
		return s.allow(opKeysPurge)(s.purgeKey)(c)
	}
	return s.allow(opKeysDelete)(s.softDeleteKey)(c)
}

func (s *server) softDeleteKey(c echo.Context) error {
	return s.changeKey(c, s.keys.Delete)
}

// restoreKey serves POST /api/keys/{kid}/restore.
func (s *server) restoreKey(c echo.Context) error {
	return s.changeKey(c, s.keys.Restore)
}

func (s *server) changeKey(c echo.Context, change func(ctx context.Context, id keystore.KeyID) (keystore.Key, error)) error {
	id, err := kidParam(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	kids := []keystore.KeyID{id}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	k, err := change(c.Request().Context(), id)
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, kids, err, true); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metadataOf(&k))
}

func (s *server) purgeKey(c echo.Context) error {
	id, err := kidParam(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	kids := []keystore.KeyID{id}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	err = s.keys.Purge(c.Request().Context(), id)
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, kids, err, true); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// deliveryPaths are the delivery plane's paths for each delivery type.
var deliveryPaths = map[string]string{
	"envelope":  "/keys/",
	"clearkey":  "/clearkey/license",
	"playready": "/playready/license",
	"widevine":  "/widevine/license",
	"fairplay":  "/fairplay/license",
}

// DeliveryURL is the URL a player uses for kid with a delivery type
// (envelope, clearkey, playready, widevine, fairplay), under the public
// base URL of the delivery plane.
func DeliveryURL(publicURL, typ string, kid keystore.KeyID) (string, bool) {
	p, ok := deliveryPaths[typ]
	if !ok {
		return "", false
	}
	base := strings.TrimRight(publicURL, "/")
	switch typ {
	case "envelope":
		return base + p + kid.String(), true
	case "widevine", "fairplay":
		// Their challenges do not name the key in a form the server reads:
		// the KID goes in the URL (the AMS /Widevine/?kid= form).
		return base + p + "?kid=" + kid.String(), true
	}
	// ClearKey and PlayReady requests name their keys themselves.
	return base + p, true
}

// deliveryURL serves GET /api/keys/{kid}/delivery-url?type=...
func (s *server) deliveryURL(c echo.Context) error {
	id, err := kidParam(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	typ := c.QueryParam("type")
	if typ == "" {
		typ = "envelope"
	}
	u, ok := DeliveryURL(s.publicURL, strings.ToLower(typ), id)
	if !ok {
		return s.conclude(c, nil, badRequest("invalid_type", "type must be envelope, clearkey, playready, widevine or fairplay"), false)
	}
	if s.publicURL == "" {
		return s.conclude(c, nil, &requestError{status: http.StatusNotImplemented, reason: "public_url_not_configured",
			detail: "the server has no --public-url: set it to the delivery plane's address as players see it"}, false)
	}
	_, err = s.keys.Metadata(c.Request().Context(), id)
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, []keystore.KeyID{id}, err, false); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"kid": id.String(), "type": strings.ToLower(typ), "url": u})
}
