package ams

import (
	"errors"
	"testing"
)

func TestKeyDeliveryType(t *testing.T) {
	tests := []struct {
		n    int
		want KeyDeliveryType
		name string
	}{
		{1, KeyDeliveryPlayReady, "PlayReady"},
		{2, KeyDeliveryBaselineHTTP, "BaselineHttp"},
		{3, KeyDeliveryWidevine, "Widevine"},
		{4, KeyDeliveryFairPlay, "FairPlay"},
	}
	for _, tt := range tests {
		got, err := ParseKeyDeliveryType(tt.n)
		if err != nil || got != tt.want || got.String() != tt.name {
			t.Errorf("ParseKeyDeliveryType(%d) = %v (%q), %v", tt.n, got, got.String(), err)
		}
	}
	for _, n := range []int{0, -1, 5, 99} {
		if _, err := ParseKeyDeliveryType(n); !errors.Is(err, ErrUnknownKeyDeliveryType) {
			t.Errorf("ParseKeyDeliveryType(%d): err = %v", n, err)
		}
	}
	if s := KeyDeliveryType(9).String(); s != "KeyDeliveryType(9)" {
		t.Errorf("String of undefined = %q", s)
	}
}

func TestContentKeyType(t *testing.T) {
	tests := []struct {
		n    int
		want ContentKeyType
		name string
	}{
		{0, ContentKeyCommonEncryption, "CommonEncryption"},
		{1, ContentKeyStorageEncryption, "StorageEncryption"},
		{2, ContentKeyConfigurationEncryption, "ConfigurationEncryption"},
		{3, ContentKeyURLEncryption, "UrlEncryption"},
		{4, ContentKeyEnvelopeEncryption, "EnvelopeEncryption"},
	}
	for _, tt := range tests {
		got, err := ParseContentKeyType(tt.n)
		if err != nil || got != tt.want || got.String() != tt.name {
			t.Errorf("ParseContentKeyType(%d) = %v (%q), %v", tt.n, got, got.String(), err)
		}
		byName, err := ParseContentKeyTypeName(tt.name)
		if err != nil || byName != tt.want {
			t.Errorf("ParseContentKeyTypeName(%q) = %v, %v", tt.name, byName, err)
		}
	}
	if got, err := ParseContentKeyTypeName("envelopeencryption"); err != nil || got != ContentKeyEnvelopeEncryption {
		t.Errorf("case-insensitive name: %v, %v", got, err)
	}
	for _, n := range []int{-1, 5, 6} {
		if _, err := ParseContentKeyType(n); !errors.Is(err, ErrUnknownContentKeyType) {
			t.Errorf("ParseContentKeyType(%d): err = %v", n, err)
		}
	}
	for _, s := range []string{"", "Envelope", "4"} {
		if _, err := ParseContentKeyTypeName(s); !errors.Is(err, ErrUnknownContentKeyType) {
			t.Errorf("ParseContentKeyTypeName(%q): err = %v", s, err)
		}
	}
}
