/** Sent in `hello.client` when the app gives no `client` option. */
export const SDK_NAME = "tether-client-ts";
export const SDK_VERSION = "0.1.0";
