package redisstore

import (
	"strconv"
	"strings"
	"sync"
)

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with (Redis Cluster specification, "Keys
// distribution model").
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first '{' and the first '}' after it when that is not empty, else the
// whole key.
func hashTag(key string) (string, bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key, false
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key, false
	}
	return key[open+1 : open+1+end], true
}

// keySlot is the cluster slot of key, as Redis computes it.
func keySlot(key string) int {
	tag, _ := hashTag(key)
	return int(crc16(tag) & (numSlots - 1))
}

// slotTags holds, for every slot, the first string of the sequence "0",
// "1", ... (base 36) that hashes to it. The sequence and the rule are part
// of the stored layout: a key named "...{<slotTags[s]>}..." lies in slot s
// on every Redis, so a store's shard keys never move. Computed once, in a
// few milliseconds.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var tags [numSlots]string
	found := 0
	for i := int64(0); found < numSlots; i++ {
		t := strconv.FormatInt(i, 36)
		if s := crc16(t) & (numSlots - 1); tags[s] == "" {
			tags[s] = t
			found++
		}
	}
	return &tags
})

// slotTag returns a hash tag ("{...}") that puts a key in slot.
func slotTag(slot int) string { return "{" + slotTags()[slot] + "}" }
