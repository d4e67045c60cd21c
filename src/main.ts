#!/usr/bin/env node
// portforward-operator entry point. The controller arrives with the PortForward API issue; until then
// the binary only answers --help, so that packaging and CI have something real to run.
console.log('usage: portforward-operator [--help]\nThe controller is not implemented yet.');
process.exit(process.argv.includes('--help') ? 0 : 2);
