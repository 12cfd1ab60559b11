// Drives orproxy with the official OpenAI SDK, as an application would:
// base URL = the proxy, a dummy key. Prints one JSON line with what it got.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.ORPROXY_BASE_URL,
  apiKey: "dummy",
  maxRetries: 0,
  timeout: 30_000,
});
const request = {
  model: "openai/gpt-4o-mini",
  messages: [{ role: "user", content: "What happened in the news today?" }],
};

try {
  if (process.argv[2] === "stream") {
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let text = "";
    let chunks = 0;
    let annotations = 0;
    for await (const chunk of stream) {
      chunks++;
      const delta = chunk.choices[0]?.delta ?? {};
      text += delta.content ?? "";
      annotations += delta.annotations?.length ?? 0;
    }
    console.log(JSON.stringify({ text, chunks, annotations }));
  } else {
    const answer = await client.chat.completions.create(request);
    const message = answer.choices[0].message;
    console.log(JSON.stringify({ text: message.content, annotations: message.annotations?.length ?? 0 }));
  }
} catch (err) {
  console.log(JSON.stringify({ error: String(err), status: err.status ?? null }));
  process.exit(1);
}
