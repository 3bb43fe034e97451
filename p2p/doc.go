// Package p2p is zopeer's network layer: a libp2p host that gossips signed
// batches of one-byte projected gradients within one run, repairs what gossip
// loses by anti-entropy over the "/zopeer/sync/1" stream protocol, announces
// each peer's state for comparison, and finds peers by mDNS, bootstrap
// addresses and a Kademlia DHT.
//
// It yields decoded, authenticated, validated batches and knows nothing of
// models or storage: it reads the caller's update log through the Log
// interface and never writes to it. docs/PROTOCOL-WIRE.md specifies the wire
// format.
//
// A node uses it as follows:
//
//	key, _ := p2p.LoadIdentity(path)
//	o := p2p.DefaultOptions()
//	o.Run, o.Key, o.Log = run, key, log // log: Get, Holdings, Batches
//	peer, _ := p2p.New(ctx, o)
//	defer peer.Close()
//	// own work: sign, store (log first), then gossip
//	b, _ := peer.NewBatch(first, exp, codes)
//	store(b.Raw, b.Updates())
//	peer.Publish(ctx, b)
//	// others' work: store what Batches delivers (idempotently)
//	for b := range peer.Batches() { store(b.Raw, b.Updates()) }
package p2p
