using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="FreshnessTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class FreshnessTestsSoak
{
    private const string Model = CacheFixture.Model;

    [ThreadStatic]
    private static bool InsideHit;

    [Fact]
    public async Task Drift_sampling_and_refresh_never_run_on_the_hit_path_with_the_inline_dispatcher()
    {
        var options = new ERCacheOptions();
        var model = CacheFixture.DefaultModel(4);
        model.Freshness = new FreshnessOptions { SampleRate = 1 };
        options.Models[Model] = model;
        var tower = new TestTower();
        int calls = 0, callsInsideTheHit = 0;
        tower.Whole = (batch, _) =>
        {
            // Whether this call runs inside the hit's own call, on its stack (a thread id alone cannot tell: the caller's
            // thread is a pool thread that may well run the background call later, after the hit returned).
            if (InsideHit)
            {
                Interlocked.Increment(ref callsInsideTheHit);
            }

            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 0);
            }

            Interlocked.Increment(ref calls);
            return ValueTask.CompletedTask;
        };
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [Model] = tower }, new EmbeddingCacheServices { Dispatcher = InferenceDispatcher.Inline });
        await cache.GetAsync(Model, 1, new float[4]);
        Assert.Equal(1, calls); // the fill, inline

        InsideHit = true;
        var hit = cache.GetAsync(Model, 1, new float[4]).AsTask();
        InsideHit = false;
        Assert.True(hit.IsCompletedSuccessfully);
        Assert.Equal(EmbeddingSource.Direct, (await hit).Source);
        await Poll.Until(() => Volatile.Read(ref calls) == 2, "the drift sample never ran");
        Assert.Equal(0, callsInsideTheHit);
    }
}
