using ERCache.Inference;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="FreshnessTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class FreshnessTestsSoak
{
    private const string Model = CacheFixture.Model;

    [Fact]
    public async Task Drift_sampling_and_refresh_never_run_on_the_hit_path_with_the_inline_dispatcher()
    {
        var options = new ERCacheOptions();
        var model = CacheFixture.DefaultModel(4);
        model.Freshness = new FreshnessOptions { SampleRate = 1 };
        options.Models[Model] = model;
        var tower = new TestTower();
        var callingThreads = new System.Collections.Concurrent.ConcurrentBag<int>();
        tower.Whole = (batch, _) =>
        {
            callingThreads.Add(Environment.CurrentManagedThreadId);
            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], 0);
            }

            return ValueTask.CompletedTask;
        };
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [Model] = tower }, new EmbeddingCacheServices { Dispatcher = InferenceDispatcher.Inline });
        await cache.GetAsync(Model, 1, new float[4]);
        int caller = Environment.CurrentManagedThreadId;
        callingThreads.Clear();
        var hit = cache.GetAsync(Model, 1, new float[4]).AsTask();
        Assert.True(hit.IsCompletedSuccessfully);
        Assert.Equal(EmbeddingSource.Direct, (await hit).Source);
        await Poll.Until(() => !callingThreads.IsEmpty);
        Assert.DoesNotContain(caller, callingThreads);
    }
}
