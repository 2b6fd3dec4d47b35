/**
 * Minimal ambient declarations for the `react-native` APIs TetherChat.tsx uses, so CI can
 * type-check the example without installing react-native (a large package with native
 * build tooling). Shapes follow react-native 0.7x+; only what the example touches.
 */
declare module "react-native" {
  import type { ComponentType, ReactElement, ReactNode } from "react";

  export type AppStateStatus = "active" | "background" | "inactive" | "unknown" | "extension";

  export interface NativeEventSubscription {
    remove(): void;
  }

  export const AppState: {
    readonly currentState: AppStateStatus;
    addEventListener(type: "change", listener: (state: AppStateStatus) => void): NativeEventSubscription;
  };

  /** A loose style object: the example only uses plain layout and colour keys. */
  export type StyleProp = Record<string, string | number | undefined>;

  export interface ViewProps {
    style?: StyleProp;
    accessibilityRole?: "alert" | "button" | "text" | "none";
    children?: ReactNode;
  }
  export const View: ComponentType<ViewProps>;

  export interface TextProps {
    style?: StyleProp;
    children?: ReactNode;
  }
  export const Text: ComponentType<TextProps>;

  export interface TextInputProps {
    style?: StyleProp;
    value?: string;
    placeholder?: string;
    editable?: boolean;
    onChangeText?: (text: string) => void;
    onSubmitEditing?: () => void;
  }
  export const TextInput: ComponentType<TextInputProps>;

  export interface ButtonProps {
    title: string;
    onPress: () => void;
    disabled?: boolean;
  }
  export const Button: ComponentType<ButtonProps>;

  export interface FlatListProps<T> {
    style?: StyleProp;
    data: readonly T[];
    keyExtractor: (item: T, index: number) => string;
    renderItem: (info: { item: T; index: number }) => ReactElement | null;
  }
  export function FlatList<T>(props: FlatListProps<T>): ReactElement | null;
}
