package httpedge

import (
	"net/url"
	"strings"
)

// QueryFold returns the first non-empty value of the query parameter whose
// name is name, matched exactly first and then without regard to case
// (clients written from the Azure Media Services documentation spell
// kid, contentKeyType and ProtectionKeyId in several ways).
func QueryFold(q url.Values, name string) (string, bool) {
	if vs := q[name]; len(vs) > 0 && vs[0] != "" {
		return vs[0], true
	}
	for k, vs := range q {
		if strings.EqualFold(k, name) && len(vs) > 0 && vs[0] != "" {
			return vs[0], true
		}
	}
	return "", false
}
