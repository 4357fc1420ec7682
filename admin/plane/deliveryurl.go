package plane

import (
	"strings"

	"github.com/keydelivery/keydelivery/keystore"
)

// deliveryPaths are the delivery plane's paths for each delivery type (the
// routes of package delivery).
var deliveryPaths = map[string]string{
	"envelope":  "/keys/",
	"clearkey":  "/clearkey/license",
	"playready": "/playready/license",
	"widevine":  "/widevine/license",
	"fairplay":  "/fairplay/license",
}

// DeliveryTypes lists the delivery types DeliveryURL knows.
const DeliveryTypes = "envelope, clearkey, playready, widevine or fairplay"

// DeliveryURL is the URL a player uses for kid with a delivery type
// (envelope, clearkey, playready, widevine, fairplay), under the public
// base URL of the delivery plane. Every admin API that tells a client where
// keys are delivered (the native API, the AMS API, SPEKE) uses it.
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
