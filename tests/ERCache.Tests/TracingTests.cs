using System.Collections.Concurrent;
using System.Diagnostics;
using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The <c>ERCache</c> activity source: one span per delegate call, tagged model, batch size and outcome.</summary>
public sealed class TracingTests
{
    private const string Model = "traced"; // other tests run at the same time: their spans carry other models

    [Fact]
    public async Task Each_delegate_call_is_one_span_with_its_model_batch_size_and_outcome()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ERCacheDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (activity.GetTagItem(ERCacheDiagnostics.ModelTag) as string == Model)
                {
                    spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var f = new CacheFixture(new Dictionary<string, Action<ModelOptions>?> { [Model] = null });

        var users = new long[] { 1, 2, 3 };
        await f.Cache.GetManyAsync(Model, users, new float[12], new EmbeddingResult[3]);
        f.Towers[Model].Whole = (_, _) => throw new InvalidOperationException("the tower failed");
        await f.Cache.GetAsync(Model, 9, new float[4]);
        Assert.Equal(2, spans.Count);

        var (ok, failed) = (spans.ElementAt(0), spans.ElementAt(1));
        Assert.Equal(ERCacheDiagnostics.InferenceActivity, ok.OperationName);
        Assert.Equal((3, "none", ActivityStatusCode.Unset), (ok.GetTagItem(ERCacheDiagnostics.BatchSizeTag), ok.GetTagItem(ERCacheDiagnostics.OutcomeTag), ok.Status));
        Assert.Equal((1, "error", ActivityStatusCode.Error), (failed.GetTagItem(ERCacheDiagnostics.BatchSizeTag), failed.GetTagItem(ERCacheDiagnostics.OutcomeTag), failed.Status));
        Assert.All(spans, s => Assert.DoesNotContain(s.Tags, t => t.Key.Contains("user", StringComparison.OrdinalIgnoreCase)));
    }

    [Fact]
    public async Task A_batch_span_is_parented_to_the_first_request_it_serves_and_linked_to_every_request()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var requests = new ActivitySource("ERCache.Tests.Requests");
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is ERCacheDiagnostics.ActivitySourceName or "ERCache.Tests.Requests",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (activity.GetTagItem(ERCacheDiagnostics.ModelTag) as string == Model)
                {
                    spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        // One call at a time: request A's user runs alone; B's and C's users queue behind it and share the next call.
        var dispatcher = new ERCache.Testing.ManualInferenceDispatcher();
        using var f = new CacheFixture(new Dictionary<string, Action<ModelOptions>?> { [Model] = m => m.Inference.MaxConcurrency = 1 }, dispatcher: dispatcher);
        Task<EmbeddingResult> Request(string name, long user, out ActivityContext context)
        {
            using var request = requests.StartActivity(name)!;
            context = request.Context;
            return f.Cache.GetAsync(Model, user, new float[4]).AsTask();
        }

        var a = Request("A", 1, out var contextA);
        var b = Request("B", 2, out var contextB);
        var c = Request("C", 3, out var contextC);
        dispatcher.RunAll();
        await Task.WhenAll(a, b, c);

        Assert.Equal(2, spans.Count);
        var (first, second) = (spans.ElementAt(0), spans.ElementAt(1));
        Assert.Equal((contextA.TraceId, contextA.SpanId), (first.TraceId, first.ParentSpanId));
        Assert.Equal([contextA], first.Links.Select(l => l.Context));
        Assert.Equal(2, second.GetTagItem(ERCacheDiagnostics.BatchSizeTag));
        Assert.Equal((contextB.TraceId, contextB.SpanId), (second.TraceId, second.ParentSpanId));
        Assert.Equal([contextB, contextC], second.Links.Select(l => l.Context));
    }
}
