package ams

import (
	"fmt"
	"strings"
)

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

// ContentKeyType is the ContentKeyType of an AMS v2 ContentKey entity. The
// values are those of the ContentKey REST reference and of the AMS .NET SDK's
// ContentKeyType enum (Azure/azure-sdk-for-media-services,
// src/net/Client/ContentKeyType.cs).
type ContentKeyType int

// The AMS content key types.
const (
	ContentKeyCommonEncryption        ContentKeyType = 0 // CENC (PlayReady, Widevine); the AMS default
	ContentKeyStorageEncryption       ContentKeyType = 1
	ContentKeyConfigurationEncryption ContentKeyType = 2
	ContentKeyURLEncryption           ContentKeyType = 3 // internal to AMS
	ContentKeyEnvelopeEncryption      ContentKeyType = 4 // AES-128 envelope (HLS)
)

var contentKeyNames = map[ContentKeyType]string{
	ContentKeyCommonEncryption:        "CommonEncryption",
	ContentKeyStorageEncryption:       "StorageEncryption",
	ContentKeyConfigurationEncryption: "ConfigurationEncryption",
	ContentKeyURLEncryption:           "UrlEncryption",
	ContentKeyEnvelopeEncryption:      "EnvelopeEncryption",
}

// String returns the AMS name of t, or "ContentKeyType(n)" for an undefined
// value.
func (t ContentKeyType) String() string {
	if s, ok := contentKeyNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ContentKeyType(%d)", int(t))
}

// ParseContentKeyType checks a ContentKeyType number.
func ParseContentKeyType(n int) (ContentKeyType, error) {
	t := ContentKeyType(n)
	if _, ok := contentKeyNames[t]; !ok {
		return 0, fmt.Errorf("%w: %d", ErrUnknownContentKeyType, n)
	}
	return t, nil
}

// ParseContentKeyTypeName looks a ContentKeyType up by its AMS name,
// ignoring case ("EnvelopeEncryption", "envelopeencryption").
func ParseContentKeyTypeName(name string) (ContentKeyType, error) {
	for t, s := range contentKeyNames {
		if strings.EqualFold(s, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownContentKeyType, name)
}
