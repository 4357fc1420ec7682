package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keydelivery/keydelivery/admin/plane"
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
func pageParams(c *plane.Call) (keystore.KeyID, int, error) {
	limit := defaultPage
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return keystore.KeyID{}, 0, plane.Invalid("invalid_limit", "limit must be a number from 1 to %d", maxPage)
		}
		limit = n
	}
	var from keystore.KeyID
	if s := c.Query("cursor"); s != "" {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != len(from) {
			return keystore.KeyID{}, 0, plane.Invalid("invalid_cursor", "cursor must be a nextCursor value from a previous page")
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
func (a *api) listKeys(c *plane.Call) (plane.Answer, error) {
	from, limit, err := pageParams(c)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Keys().List(c.Context(), from, limit)
	if err != nil {
		return plane.Answer{}, err
	}
	page := keyPage{Keys: make([]keyMetadata, len(keys))}
	for i := range keys {
		page.Keys[i] = metadataOf(&keys[i])
	}
	if len(keys) > 0 {
		page.NextCursor = nextCursor(keys[len(keys)-1].ID, len(keys), limit)
	}
	return plane.JSON(http.StatusOK, page), nil
}

// listAssetKeys serves GET /api/assets/{assetId}/keys.
func (a *api) listAssetKeys(c *plane.Call) (plane.Answer, error) {
	asset, err := url.PathUnescape(c.RawParam("asset"))
	if err == nil {
		err = keystore.ValidateAsset(asset)
	}
	if err != nil {
		return plane.Answer{}, plane.Invalid(plane.ReasonInvalidAsset, "the asset ID must be 1 to %d printable characters without spaces", keystore.MaxAssetID)
	}
	from, limit, err := pageParams(c)
	if err != nil {
		return plane.Answer{}, err
	}
	ctx := c.Context()
	ids, err := c.Keys().ListAsset(ctx, asset, from, limit)
	c.Name(ids...)
	if err != nil {
		return plane.Answer{}, err
	}
	page := keyPage{Keys: make([]keyMetadata, 0, len(ids))}
	for _, id := range ids {
		k, err := c.Keys().Metadata(ctx, id)
		if errors.Is(err, keystore.ErrNotFound) {
			continue // purged since the index was read
		}
		if err != nil {
			return plane.Answer{}, err
		}
		page.Keys = append(page.Keys, metadataOf(&k))
	}
	if len(ids) > 0 {
		page.NextCursor = nextCursor(ids[len(ids)-1], len(ids), limit)
	}
	return plane.JSON(http.StatusOK, page), nil
}

// deleteOrPurge chooses the operation of DELETE /api/keys/{kid}: a soft
// delete (the key stops being delivered at once and is kept for the
// retention period), or with ?purge=true (role admin) the destruction of a
// key already deleted.
func (a *api) deleteOrPurge(c *plane.Call) (plane.Operation, plane.Handler) {
	p := c.Query("purge")
	if p == "" {
		return opKeysDelete, a.softDeleteKey
	}
	purge, err := strconv.ParseBool(p)
	switch {
	case err != nil:
		return opKeysDelete, func(*plane.Call) (plane.Answer, error) {
			return plane.Answer{}, plane.Invalid("invalid_purge", "purge must be true or false")
		}
	case purge:
		return opKeysPurge, a.purgeKey
	}
	return opKeysDelete, a.softDeleteKey
}

func (a *api) softDeleteKey(c *plane.Call) (plane.Answer, error) {
	return changeKey(c, plane.Writer.Delete)
}

// restoreKey serves POST /api/keys/{kid}/restore.
func (a *api) restoreKey(c *plane.Call) (plane.Answer, error) {
	return changeKey(c, plane.Writer.Restore)
}

func changeKey(c *plane.Call, change func(w plane.Writer, ctx context.Context, id keystore.KeyID) (keystore.Key, error)) (plane.Answer, error) {
	id, err := kidParam(c)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(id)
	if err != nil {
		return plane.Answer{}, err
	}
	k, err := change(keys, c.Context(), id)
	if err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.JSON(http.StatusOK, metadataOf(&k)), nil
}

func (a *api) purgeKey(c *plane.Call) (plane.Answer, error) {
	id, err := kidParam(c)
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(id)
	if err != nil {
		return plane.Answer{}, err
	}
	if err := keys.Purge(c.Context(), id); err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.NoContent(http.StatusNoContent), nil
}

// errNoPublicURL answers the routes that build delivery URLs when the
// server has no --public-url.
var errNoPublicURL = plane.NotConfigured("public_url_not_configured",
	"the server has no --public-url: set it to the delivery plane's address as players see it")

// deliveryURL serves GET /api/keys/{kid}/delivery-url?type=...
func (a *api) deliveryURL(c *plane.Call) (plane.Answer, error) {
	id, err := kidParam(c)
	if err != nil {
		return plane.Answer{}, err
	}
	typ := strings.ToLower(c.Query("type"))
	if typ == "" {
		typ = "envelope"
	}
	u, ok := plane.DeliveryURL(a.publicURL, typ, id)
	if !ok {
		return plane.Answer{}, plane.Invalid("invalid_type", "type must be %s", plane.DeliveryTypes)
	}
	if a.publicURL == "" {
		return plane.Answer{}, errNoPublicURL
	}
	c.Name(id)
	if _, err := c.Keys().Metadata(c.Context(), id); err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.JSON(http.StatusOK, map[string]string{"kid": id.String(), "type": typ, "url": u}), nil
}
