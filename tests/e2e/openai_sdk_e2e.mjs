// openai_sdk_e2e.mjs: the official `openai` npm SDK (v6, pinned in
// tests/standins/package.json) as a real client of Chorus's OpenAI-compatible API
// (GET /v1/models, GET /v1/models/{id} and POST /v1/chat/completions through the
// edge), authenticated with a Chorus API key. Run by test_agents.py:
//
//     node openai_sdk_e2e.mjs '{"base": "http://127.0.0.1:PORT/v1", "apiKey": "chr_...",
//                               "model": "<agent name>", "modelId": "<agent id>",
//                               "prompt": "<agent system prompt>", "run": "<suffix>",
//                               "sdk": "<path of the SDK's index.mjs>"}'
//
// Prints one line per check, `ok NAME` or `FAIL NAME :: why`, and exits 1 when one
// failed, 77 when the SDK is not installed (npm ci in tests/standins). The stand-in
// behind the agent is steered by the markers in the user messages ([[key:...]] lets
// test_agents.py find each request in the stand-in's log afterwards).
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const args = JSON.parse(process.argv[2] || '{}');
let OpenAI;
try {
    OpenAI = (await import(pathToFileURL(args.sdk).href)).default;
} catch (err) {
    console.log(`skip: the openai SDK is not installed (${err.message})`);
    process.exit(77);
}

const client = new OpenAI({ apiKey: args.apiKey, baseURL: args.base, maxRetries: 0,
                            timeout: 20000 });
const key = (name) => `[[key:${name}-${args.run}]]`;
//  The same with the stand-in's tokens 20 ms apart: each reaches the SDK as its own
//  chunk, as a model's do (tokens that come together go on as one chunk).
const paced = (name) => `[[key:${name}-${args.run} delay_ms:20]]`;
const words = (s) => s.split(/\s+/).filter(Boolean).length;

const checks = [];
const check = (name, fn) => checks.push([name, fn]);

check('models.list: the agent is a model', async () => {
    const ids = [];
    for await (const model of client.models.list()) {
        assert.equal(model.object, 'model');
        assert.equal(model.owned_by, 'chorus');
        assert.equal(typeof model.created, 'number');
        ids.push(model.id);
    }
    assert.ok(ids.includes(args.model), JSON.stringify(ids));
});

check('models.retrieve: the agent by its name, in any case, and by its id', async () => {
    for (const asked of [args.model, args.model.toUpperCase(), args.modelId]) {
        const model = await client.models.retrieve(asked);
        assert.equal(model.id, args.model);
        assert.equal(model.object, 'model');
        assert.equal(model.owned_by, 'chorus');
        assert.equal(typeof model.created, 'number');
    }
    // the same object as its entry in models.list
    const listed = [];
    for await (const model of client.models.list()) listed.push(model);
    const entry = listed.find((m) => m.id === args.model);
    assert.deepEqual({ ...(await client.models.retrieve(args.model)) }, { ...entry });
});

check('models.retrieve: an unknown model is NotFoundError model_not_found', async () => {
    for (const asked of [`no-such-agent-${args.run}`, '00000000-0000-4000-8000-000000000000']) {
        await assert.rejects(client.models.retrieve(asked), (err) => {
            assert.ok(err instanceof OpenAI.NotFoundError, `${err.constructor.name}: ${err.message}`);
            assert.equal(err.status, 404);
            assert.equal(err.code, 'model_not_found');
            assert.equal(err.type, 'invalid_request_error');
            return true;
        });
    }
});

check('chat.completions.create: not streamed', async () => {
    const done = await client.chat.completions.create({
        model: args.model,
        messages: [{ role: 'user', content: `hello from the sdk ${key('sdk-plain')}` }],
    });
    assert.equal(done.object, 'chat.completion');
    assert.match(done.id, /^chatcmpl-/);
    assert.equal(done.model, args.model);
    assert.equal(done.choices.length, 1);
    assert.equal(done.choices[0].message.role, 'assistant');
    assert.equal(done.choices[0].message.content, 'Echo: hello from the sdk');
    assert.equal(done.choices[0].finish_reason, 'stop');
    assert.equal(done.usage.completion_tokens, 5);
    // the stand-in counts the words of every message, the agent's prompt included
    assert.equal(done.usage.prompt_tokens, words(args.prompt) + 5);
    assert.equal(done.usage.total_tokens, done.usage.prompt_tokens + 5);
});

check('the agent id is a model name too', async () => {
    const done = await client.chat.completions.create({
        model: args.modelId,
        messages: [{ role: 'user', content: `by id ${key('sdk-id')}` }],
    });
    assert.equal(done.choices[0].message.content, 'Echo: by id');
});

check('stream: true with stream_options.include_usage', async () => {
    const stream = await client.chat.completions.create({
        model: args.model,
        messages: [{ role: 'system', content: 'the caller adds this' },
                   { role: 'user', content: `streamed by the sdk ${paced('sdk-stream')}` }],
        stream: true,
        stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream)
        chunks.push(chunk);
    assert.ok(chunks.length >= 6, String(chunks.length));
    const ids = new Set(chunks.map((c) => c.id));
    assert.equal(ids.size, 1);
    for (const c of chunks)
        assert.equal(c.object, 'chat.completion.chunk');
    const text = chunks.flatMap((c) => c.choices).map((ch) => ch.delta?.content ?? '').join('');
    assert.equal(text, 'Echo: streamed by the sdk');
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 5);
    assert.equal(last.usage.prompt_tokens, words(args.prompt) + 4 + 6);
    const finish = chunks[chunks.length - 2].choices[0];
    assert.equal(finish.finish_reason, 'stop');
    // every chunk before the usage one carries usage: null, as OpenAI's do
    for (const c of chunks.slice(0, -1))
        assert.equal(c.usage, null);
});

check('chat.completions.stream().finalChatCompletion() rebuilds the text', async () => {
    const stream = client.chat.completions.stream({
        model: args.model,
        messages: [{ role: 'user', content: `rebuilt by the helper ${paced('sdk-helper')}` }],
        stream_options: { include_usage: true },
    });
    let deltas = 0;
    stream.on('content', () => { deltas += 1; });
    const done = await stream.finalChatCompletion();
    assert.equal(done.choices[0].message.content, 'Echo: rebuilt by the helper');
    assert.equal(done.choices[0].finish_reason, 'stop');
    assert.ok(deltas >= 2, String(deltas));  //  paced: several chunks, each whole tokens
    assert.equal(done.usage.completion_tokens, 5);
    assert.equal(done.usage.total_tokens, done.usage.prompt_tokens + 5);
});

const weather = { city: 'Paris', units: 'metric', days: [1, 2, 3] };
const tools = [{ type: 'function', function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

check('stream helper: a tool call and its arguments', async () => {
    const stream = client.chat.completions.stream({
        model: args.model,
        messages: [{ role: 'user', content: `weather please ${key('sdk-tool')} [[with_text]] ` +
                     `[[tool:get_weather ${JSON.stringify(weather)}]]` }],
        tools,
        stream_options: { include_usage: true },
    });
    const argsDone = [];
    stream.on('tool_calls.function.arguments.done', (e) => argsDone.push(e.name));
    const done = await stream.finalChatCompletion();
    const msg = done.choices[0].message;
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.content, 'Echo: weather please');
    assert.equal(msg.tool_calls.length, 1);
    assert.equal(msg.tool_calls[0].type, 'function');
    assert.match(msg.tool_calls[0].id, /^call_/);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), weather);
    assert.deepEqual(argsDone, ['get_weather']);
    assert.ok(done.usage.completion_tokens > 3, JSON.stringify(done.usage));
});

check('not streamed: a tool call and its arguments', async () => {
    const done = await client.chat.completions.create({
        model: args.model,
        messages: [{ role: 'user', content: `weather again ${key('sdk-tool2')} ` +
                     `[[tool:get_weather ${JSON.stringify(weather)}]]` }],
        tools,
    });
    const msg = done.choices[0].message;
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.content, null);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), weather);
});

check('a tool result goes back and the agent answers', async () => {
    const done = await client.chat.completions.create({
        model: args.model,
        messages: [
            { role: 'user', content: `weather in Paris ${key('sdk-tool3')}` },
            { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
              function: { name: 'get_weather', arguments: JSON.stringify(weather) } }] },
            { role: 'tool', tool_call_id: 'call_1', content: 'sunny and warm' },
        ],
        tools,
    });
    assert.equal(done.choices[0].message.content, 'Echo: sunny and warm');
    assert.equal(done.choices[0].finish_reason, 'stop');
});

check('a provider error mid-stream is an APIError', async () => {
    const stream = client.chat.completions.stream({
        model: args.model,
        messages: [{ role: 'user', content: `boom ${key('sdk-error')} [[tokens:6 error_after:2]]` }],
    });
    await assert.rejects(stream.finalChatCompletion(), (err) => {
        assert.ok(err instanceof OpenAI.APIError, `${err.constructor.name}: ${err.message}`);
        return true;
    });
});

check('abort() mid-stream', async () => {
    const stream = client.chat.completions.stream({
        model: args.model,
        messages: [{ role: 'user', content: `slow ${key('sdk-abort')} [[tokens:200 delay_ms:50]]` }],
    });
    let deltas = 0;
    stream.on('content', () => { deltas += 1; if (deltas === 3) stream.abort(); });
    await assert.rejects(stream.finalChatCompletion(), (err) => {
        assert.ok(err instanceof OpenAI.APIUserAbortError, `${err.constructor.name}: ${err.message}`);
        return true;
    });
    assert.ok(deltas >= 3 && deltas < 100, String(deltas));
});

check('unknown model: NotFoundError', async () => {
    await assert.rejects(client.chat.completions.create({
        model: `no-such-agent-${args.run}`,
        messages: [{ role: 'user', content: 'anyone?' }],
    }), (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `${err.constructor.name}: ${err.message}`);
        assert.equal(err.status, 404);
        assert.equal(err.type, 'invalid_request_error');
        return true;
    });
});

check('a bad API key: AuthenticationError', async () => {
    const bad = new OpenAI({ apiKey: 'chr_' + 'A'.repeat(43), baseURL: args.base,
                             maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({
        model: args.model, messages: [{ role: 'user', content: 'hi' }],
    }), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError,
                  `${err.constructor.name}: ${err.message}`);
        assert.equal(err.status, 401);
        return true;
    });
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
});

let failed = 0;
for (const [name, fn] of checks) {
    try {
        await fn();
        console.log(`ok ${name}`);
    } catch (err) {
        failed += 1;
        console.log(`FAIL ${name} :: ${String(err && err.stack || err).replace(/\n/g, ' | ')}`);
    }
}
process.exit(failed ? 1 : 0);
