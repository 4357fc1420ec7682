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
