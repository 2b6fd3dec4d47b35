/**
 * A React Native chat screen on one Tether session.
 *
 * - The session survives app restarts: `resumeState()` is persisted in AsyncStorage after
 *   every `connected` (the resume token rotates at each resume) and after each delivered
 *   event (so a restart resumes after the last event shown, without replays).
 * - Coming back to the foreground calls `reconnectNow()`: a backgrounded app may be deep
 *   in a backoff wait, and the user should not watch a stale screen for 30 s.
 * - React Native's WebSocket accepts headers, so the token travels in `Authorization`
 *   (`tokenCarrier: "header"`) rather than in the subprotocol list.
 */
import AsyncStorage from "@react-native-async-storage/async-storage";
import { TetherClient } from "@tether/client";
import type { ResumeState } from "@tether/client";
import { useCallback, useEffect, useRef, useState } from "react";
import { AppState, Button, FlatList, Text, TextInput, View } from "react-native";
import type { AppStateStatus } from "react-native";

const STORAGE_KEY = "tether.resumeState";

/** Terminal close codes: the SDK stops; the user has to sign in again (or give up). */
const TERMINAL_MESSAGES: Record<number, string> = {
  4004: "Your session was revoked",
  4005: "You were logged out",
  4006: "This tenant is disabled",
};

export interface TetherChatProps {
  /** Node URLs, e.g. ["wss://n1.example.com/v1/connect", "wss://n2.example.com/v1/connect"]. */
  urls: string[];
  /** A fresh user JWT from your backend; called at connect, reconnect and refresh. */
  getToken: () => Promise<string>;
  channel: string;
  /** Called on a terminal close other than the app's own `close()`. */
  onSignedOut?: (code: number) => void;
}

interface Message {
  seq: number;
  text: string;
}

type Banner = { kind: "reconnecting" | "terminal"; text: string } | null;

function persist(state: ResumeState | null): void {
  // Fire and forget: a failed write only costs a fresh session on the next start.
  void (state ? AsyncStorage.setItem(STORAGE_KEY, JSON.stringify(state)) : AsyncStorage.removeItem(STORAGE_KEY)).catch(
    () => undefined,
  );
}

async function loadResumeState(): Promise<ResumeState | undefined> {
  try {
    const raw = await AsyncStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as ResumeState) : undefined;
  } catch {
    return undefined;
  }
}

export function TetherChat({ urls, getToken, channel, onSignedOut }: TetherChatProps) {
  const clientRef = useRef<TetherClient | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [banner, setBanner] = useState<Banner>(null);
  const [connected, setConnected] = useState(false);
  const [draft, setDraft] = useState("");

  useEffect(() => {
    let disposed = false;
    let client: TetherClient | null = null;

    void (async () => {
      const resumeState = await loadResumeState();
      if (disposed) return;
      client = new TetherClient({ urls, getToken, tokenCarrier: "header", resumeState });
      clientRef.current = client;
      const c = client;
      c.on("connected", () => {
        setConnected(true);
        setBanner(null);
        persist(c.resumeState());
      });
      c.on("reconnecting", (e) => {
        setConnected(false);
        setBanner({ kind: "reconnecting", text: `Reconnecting… (attempt ${e.attempt})` });
      });
      c.on("event", (e) => {
        if (e.channel !== channel) return;
        const data = e.data as { text?: unknown };
        const text = typeof data?.text === "string" ? data.text : JSON.stringify(e.data);
        setMessages((m) => [...m, { seq: e.seq, text }]);
        persist(c.resumeState());
      });
      c.on("closed", (e) => {
        if (!e.terminal) return;
        setConnected(false);
        if (e.code === 1000) return; // our own close() on unmount
        // The session is gone for good: do not try to resume it on the next start.
        persist(null);
        setBanner({ kind: "terminal", text: TERMINAL_MESSAGES[e.code] ?? `Disconnected (${e.code})` });
        onSignedOut?.(e.code);
      });
      try {
        await c.connect();
        // Subscriptions are kept by a recovered resume and re-sent by the SDK otherwise;
        // subscribing again after an app restart is harmless.
        await c.subscribe(channel);
      } catch {
        // A terminal refusal already showed its banner through `closed`.
      }
    })();

    const sub = AppState.addEventListener("change", (s: AppStateStatus) => {
      if (s === "active") clientRef.current?.reconnectNow();
    });

    return () => {
      disposed = true;
      sub.remove();
      clientRef.current = null;
      void client?.close();
    };
  }, [urls, getToken, channel, onSignedOut]);

  const send = useCallback(() => {
    const text = draft.trim();
    const client = clientRef.current;
    if (!text || !client) return;
    setDraft("");
    client.publish(channel, { text }).catch((e: { code: string; message: string }) => {
      setBanner({ kind: "reconnecting", text: `Not sent (${e.code}): ${e.message}` });
    });
  }, [draft, channel]);

  return (
    <View style={{ flex: 1, padding: 12 }}>
      {banner && (
        <View
          accessibilityRole="alert"
          style={{ padding: 8, marginBottom: 8, backgroundColor: banner.kind === "terminal" ? "#c62828" : "#fff3b0" }}
        >
          <Text style={{ color: banner.kind === "terminal" ? "#fff" : "#5c4a00", fontWeight: "600" }}>{banner.text}</Text>
        </View>
      )}
      <FlatList
        style={{ flex: 1 }}
        data={messages}
        keyExtractor={(m: Message) => String(m.seq)}
        renderItem={({ item }: { item: Message }) => <Text>{item.text}</Text>}
      />
      <View style={{ flexDirection: "row", alignItems: "center" }}>
        <TextInput
          style={{ flex: 1, borderWidth: 1, borderColor: "#ccc", padding: 6, marginRight: 8 }}
          value={draft}
          onChangeText={setDraft}
          onSubmitEditing={send}
          editable={connected}
          placeholder="Say something"
        />
        <Button title="Send" onPress={send} disabled={!connected || draft.trim() === ""} />
      </View>
    </View>
  );
}
