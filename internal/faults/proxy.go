// Package faults injects the faults a deployment meets between tally and
// its servers (PostgreSQL, Redis): a small TCP proxy whose mode is switched
// by the tests — pass bytes through, stall them, reset every connection,
// or refuse connections as a stopped server does. The fault suite
// (faults_test.go) runs several tally instances through it.
package faults

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
)

// Mode is what a Proxy does with its connections.
type Mode int

// The modes of a Proxy.
const (
	Pass  Mode = iota // forward bytes both ways
	Stall             // accept and hold: no byte goes through until the mode changes
	Reset             // reset every open connection and every new one (the peer sees ECONNRESET)
	Down              // refuse connections (the listener is closed) and reset the open ones
)

func (m Mode) String() string {
	return [...]string{"pass", "stall", "reset", "down"}[m]
}

// Proxy forwards TCP connections from its address to a target.
type Proxy struct {
	target string
	addr   string

	mu      sync.Mutex
	changed *sync.Cond
	mode    Mode
	ln      net.Listener
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.changed = sync.NewCond(&p.mu)
	p.serve(ln)
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches the mode. Reset and Down reset the open connections at
// once; leaving Down listens again on the same address.
func (p *Proxy) Set(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faults: proxy closed")
	}
	prev := p.mode
	p.mode = m
	p.changed.Broadcast()
	if m == Reset || m == Down {
		for c := range p.conns {
			reset(c)
		}
	}
	if m == Down && prev != Down {
		p.ln.Close()
	}
	if m != Down && prev == Down {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.mode = Down
			return err
		}
		p.ln = ln
		p.serve(ln)
	}
	return nil
}

// Close stops the proxy and resets every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		reset(c)
	}
	p.changed.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve(ln net.Listener) {
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.handle(c) })
		}
	})
}

// track adds c to the open connections, or resets it when the mode says
// so; it reports whether c may be used.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == Reset || p.mode == Down {
		reset(c)
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) handle(client net.Conn) {
	if !p.track(client) {
		return
	}
	if !p.wait() {
		p.untrack(client)
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(client)
		reset(client)
		return
	}
	if !p.track(server) {
		p.untrack(client)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(server, client); p.untrack(client, server) })
	wg.Go(func() { p.pipe(client, server); p.untrack(client, server) })
	wg.Wait()
}

// wait blocks while the proxy stalls; it reports whether to go on.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == Stall && !p.closed {
		p.changed.Wait()
	}
	return !p.closed && p.mode == Pass
}

// pipe copies src to dst, holding every chunk while the proxy stalls.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			}
			return
		}
	}
}

// reset closes c so that its peer sees a reset, not an orderly close.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Front starts a Proxy in front of the server of rawURL (a postgres:// or
// redis:// URL) and returns it with rawURL pointing at the proxy instead.
func Front(rawURL string) (*Proxy, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", err
	}
	p, err := Start(u.Host)
	if err != nil {
		return nil, "", err
	}
	u.Host = p.Addr()
	return p, u.String(), nil
}
