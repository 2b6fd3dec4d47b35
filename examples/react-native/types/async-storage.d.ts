/**
 * Ambient declaration of the part of `@react-native-async-storage/async-storage` the
 * example uses. The real package ships its own types but has `react-native` as a peer
 * dependency, which npm would install; see README.md.
 */
declare module "@react-native-async-storage/async-storage" {
  const AsyncStorage: {
    getItem(key: string): Promise<string | null>;
    setItem(key: string, value: string): Promise<void>;
    removeItem(key: string): Promise<void>;
  };
  export default AsyncStorage;
}
