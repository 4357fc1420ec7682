package admin

import (
	"net/http"

	"github.com/keydelivery/keydelivery/admin/plane"
)

// adoptAnswer is the answer of POST /api/store/adopt.
type adoptAnswer struct {
	Status string `json:"status"` // "adopted"
	Store  string `json:"store"`  // the store marker's identity
}

// adoptStore serves POST /api/store/adopt (role admin): the operator's word
// that the store is to be used as it is now. It writes the store marker
// where it is missing (a new store, one restored from a backup, or one that
// lost data and is accepted as it is), checks the KEKs (writing the check
// values of KEK IDs the store has not seen), and clears the store_lost
// state, so the server becomes ready and takes writes again. Adopting a
// store that is fine changes nothing.
func (a *api) adoptStore(c *plane.Call) (plane.Answer, error) {
	if err := c.DecodeJSON(&struct{}{}, maxKeyBody, "the body is empty or {}"); err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin()
	if err != nil {
		return plane.Answer{}, err
	}
	id, err := keys.Adopt(c.Context())
	if err != nil {
		return plane.Answer{}, err
	}
	return plane.JSON(http.StatusOK, adoptAnswer{Status: "adopted", Store: id}), nil
}
