// Package delivery is the public HTTP edge of keydelivery: the plane video
// players talk to. It serves content keys (GET /keys/{kid}, and the Azure
// Media Services form /?kid=) and W3C ClearKey licenses (POST
// /clearkey/license) to requests carrying a valid token that grants every
// key asked for, with CORS for browser players, and renders every refusal as
// an RFC 9457 problem with a stable code and reason.
//
// PlayReady, Widevine and FairPlay license requests (POST
// /{system}/license, and the AMS forms /PlayReady/, /Widevine/?kid=,
// /FairPlay/?kid=) pass the same checks and are then handed to a
// LicenseIssuer: a vendor SDK integration or a proxy to a vendor's license
// server, plugged in through Options.LicenseIssuers. The default,
// StubIssuer, names the entitled keys and issues nothing.
//
// Trust boundary: everything arriving here is untrusted. Tokens are verified
// by package auth; whether a token grants a key is decided from the token
// alone, before any store lookup, so a refusal says nothing about which keys
// exist. Tokens and key bytes never reach a log line, an error body or a
// metric label; a token passed in the query string is redacted from the
// access log.
//
// echo lives only here and in package admin; its types never appear in this
// package's exported API. delivery never imports a concrete store.
package delivery
