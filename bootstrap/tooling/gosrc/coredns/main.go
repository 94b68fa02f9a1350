// The node sandbox's DNS server: CoreDNS as a library, with only the plugins the sandbox's
// Corefile names (bootstrap/sandbox/node.py), so that its build compiles a fraction of a
// full CoreDNS. Built by tools.install from a wrapper module that requires
// github.com/coredns/coredns at the version pinned in bootstrap/tooling/versions.py.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/template"
)

func init() {
	// the order a request passes the plugins in, as CoreDNS's own plugin.cfg orders them
	dnsserver.Directives = []string{"errors", "cache", "template", "kubernetes"}
}

func main() {
	coremain.Run()
}
