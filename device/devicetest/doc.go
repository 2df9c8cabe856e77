// Package devicetest is the conformance suite every backend must pass:
// devicetest.Run checks each primitive of device.Device against float64
// references computed here.
package devicetest
