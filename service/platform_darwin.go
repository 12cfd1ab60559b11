//go:build darwin

package service

func currentPlatform() platform { return launchdPlatform{} }
