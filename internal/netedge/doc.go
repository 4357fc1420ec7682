// Package netedge is the network edge of both planes' listeners, below
// HTTP: who the client is (the peer, or, only from a trusted proxy, the
// address the proxy forwards in X-Forwarded-For, Forwarded or a PROXY
// protocol header) and how many connections a listener holds (a cap, with
// idle keep-alive connections closed first when it is reached).
//
// # Trust boundary
//
// Every forwarded address is attacker input unless it was written by a
// proxy the operator listed: without a trusted proxy, headers and PROXY
// protocol headers are ignored and the client is the TCP peer. With them,
// the client is the right-most address that is not itself a trusted proxy,
// so a client cannot choose its own address by sending the header itself.
// The client address is what the access logs, the audit log and the rate
// limits use. The connection cap bounds the memory idle connections can
// hold, whatever their number.
//
// github.com/pires/go-proxyproto is used in this package only; none of its
// types appear in the exported API. The package imports no other package of
// keydelivery.
package netedge
