package ams

import "fmt"

// KeyDeliveryType is the keyDeliveryType of the AMS GetKeyDeliveryUrl
// function (ContentKeyDeliveryType in the AMS SDKs): how a player gets the
// key.
type KeyDeliveryType int

// The AMS key delivery types. 0 (None) is not a valid request value.
const (
	KeyDeliveryPlayReady    KeyDeliveryType = 1 // PlayReady license acquisition
	KeyDeliveryBaselineHTTP KeyDeliveryType = 2 // MPEG baseline HTTP key (AES-128 envelope, HLS)
	KeyDeliveryWidevine     KeyDeliveryType = 3 // Widevine license
	KeyDeliveryFairPlay     KeyDeliveryType = 4 // FairPlay (SPC in, CKC out)
)

var keyDeliveryNames = map[KeyDeliveryType]string{
	KeyDeliveryPlayReady:    "PlayReady",
	KeyDeliveryBaselineHTTP: "BaselineHttp",
	KeyDeliveryWidevine:     "Widevine",
	KeyDeliveryFairPlay:     "FairPlay",
}

// String returns the AMS name of t ("PlayReady", "BaselineHttp", "Widevine",
// "FairPlay"), or "KeyDeliveryType(n)" for an undefined value.
func (t KeyDeliveryType) String() string {
	if s, ok := keyDeliveryNames[t]; ok {
		return s
	}
	return fmt.Sprintf("KeyDeliveryType(%d)", int(t))
}

// ParseKeyDeliveryType checks a keyDeliveryType number from a request.
func ParseKeyDeliveryType(n int) (KeyDeliveryType, error) {
	t := KeyDeliveryType(n)
	if _, ok := keyDeliveryNames[t]; !ok {
		return 0, fmt.Errorf("%w: %d", ErrUnknownKeyDeliveryType, n)
	}
	return t, nil
}
