using System.Diagnostics;
using ERCache.Inference;
using ERCache.Samples.RankingService;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.OnnxRuntime.Tests;

/// <summary>The adapter against the sample's committed ONNX tower (cvr: 64 features → 256 → 256 → 64), whose weights
/// the sample's C# <see cref="UserTower"/> holds: that tower is the independent computation.</summary>
public sealed class OnnxEmbeddingInferenceTests
{
    internal const int Dimensions = 64;

    /// <summary>The committed file, copied beside the sample's assembly.</summary>
    internal static string ModelPath => Path.Combine(AppContext.BaseDirectory, "models", "cvr_user_tower.onnx");

    /// <summary>The C# tower with the ONNX file's weights (cvr is the second model by name: seed 2).</summary>
    internal static UserTower Reference() => TowerRegistry.CreateTower("cvr", Dimensions, seed: 2, onnx: true);

    internal static OnnxEmbeddingInference Open(int dimensions = Dimensions, string? input = null, string? output = null) =>
        new("cvr", dimensions, new OnnxModelOptions { Path = ModelPath, Input = input, Output = output }, UserTower.Featurize);

    /// <summary>A cache whose only model, cvr, runs on <paramref name="onnx"/> (on a fake clock: no deadline passes).</summary>
    private static EmbeddingCache CacheOver(OnnxEmbeddingInference onnx, Action<ModelOptions> configure)
    {
        var model = new ModelOptions { Dimensions = Dimensions };
        model.Direct.Ttl = TimeSpan.FromMinutes(1);
        model.Failover.Ttl = TimeSpan.FromHours(1);
        configure(model);
        var options = new ERCacheOptions { Models = { ["cvr"] = model } };
        return EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["cvr"] = onnx }, new EmbeddingCacheServices { TimeProvider = new FakeTimeProvider() });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(300)]
    public void A_run_matches_the_reference_computation_for_every_user(int users)
    {
        using var onnx = Open();
        var reference = Reference();
        var ids = Enumerable.Range(0, users).Select(i => (long)(i * 7919) - 1000).ToArray();
        var embeddings = new float[users * Dimensions];

        onnx.Run(ids, embeddings);

        var expected = new float[Dimensions];
        for (int i = 0; i < users; i++)
        {
            reference.Compute(ids[i], expected);
            for (int j = 0; j < Dimensions; j++)
            {
                Assert.Equal(expected[j], embeddings[(i * Dimensions) + j], 1e-4f * MathF.Max(1, MathF.Abs(expected[j])));
            }
        }

        Assert.Equal(64, onnx.Features);
    }

    [Fact]
    public async Task Through_the_cache_each_batch_is_one_run_and_every_user_gets_its_own_vector()
    {
        using var onnx = Open();
        var reference = Reference();
        using var cache = CacheOver(onnx, m => m.Inference.MaxBatchSize = 16);
        var ids = Enumerable.Range(1, 100).Select(i => (long)i).ToArray();
        var vectors = new float[ids.Length * Dimensions];
        var results = new EmbeddingResult[ids.Length];

        await cache.GetManyAsync("cvr", ids, vectors, results).AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
        var expected = new float[Dimensions];
        for (int i = 0; i < ids.Length; i++)
        {
            reference.Compute(ids[i], expected);
            Assert.Equal(expected, vectors.AsSpan(i * Dimensions, Dimensions).ToArray(), (a, b) => MathF.Abs(a - b) <= 1e-4f * MathF.Max(1, MathF.Abs(a)));
        }
    }

    [Fact]
    public async Task Many_threads_share_one_session_and_no_caller_receives_another_users_vector()
    {
        using var onnx = Open();
        var reference = Reference();
        using var cache = CacheOver(onnx, m => m.Inference.Timeout = TimeSpan.FromSeconds(30));

        var failures = await Task.WhenAll(Enumerable.Range(0, 8).Select(thread => Task.Run(async () =>
        {
            int wrong = 0;
            var vector = new float[Dimensions];
            var expected = new float[Dimensions];
            for (int i = 0; i < 200; i++)
            {
                long user = ((thread * 31) + i) % 300; // overlapping users: coalescing, hits and misses mixed
                var result = await cache.GetAsync("cvr", user, vector);
                reference.Compute(user, expected);
                if (result.Source is not (EmbeddingSource.Fresh or EmbeddingSource.Direct) ||
                    !expected.AsSpan().SequenceEqual(vector) && expected.Zip(vector).Any(p => MathF.Abs(p.First - p.Second) > 1e-4f * MathF.Max(1, MathF.Abs(p.First))))
                {
                    wrong++;
                }
            }

            return wrong;
        })));

        Assert.All(failures, w => Assert.Equal(0, w));
    }

    [Fact]
    public void An_output_that_is_not_batch_by_Dimensions_is_a_startup_error_naming_the_model_the_output_and_its_shape()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Open(dimensions: 32));

        Assert.Equal("The ONNX model of 'cvr': output 'embedding' has shape [batch, 64], expected [batch, 32] (the model's Dimensions).", ex.Message);
    }

    [Fact]
    public void A_tensor_name_the_model_lacks_is_an_error_listing_the_ones_it_has()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Open(input: "user_features"));

        Assert.Equal("The ONNX model of 'cvr' has no input 'user_features'; its inputs: features.", ex.Message);
    }

    [Fact]
    public void A_missing_file_names_the_model_and_the_path()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => new OnnxEmbeddingInference("cvr", Dimensions, new OnnxModelOptions { Path = "nope.onnx" }, UserTower.Featurize));

        Assert.Contains("'cvr'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nope.onnx", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cancelled_token_stops_before_the_run_and_a_token_cancelled_during_it_terminates_the_run()
    {
        using var onnx = Open();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => onnx.Run([1L], new float[Dimensions], cancelled.Token));

        // A run of 400,000 users takes seconds; cancelled 50 ms in, it ends early through RunOptions.Terminate: a run
        // that completed would throw nothing, and would have written its output (bound to the caller's buffer, written
        // by the graph's last node). Both are checked instead of a wall-clock bound, which a loaded machine broke.
        var users = Enumerable.Range(0, 400_000).Select(i => (long)i).ToArray();
        var embeddings = new float[users.Length * Dimensions];
        using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var ex = Assert.ThrowsAny<OperationCanceledException>(() => onnx.Run(users, embeddings, soon.Token));

        Assert.Equal(soon.Token, ex.CancellationToken);
        Assert.True(embeddings.AsSpan().IndexOfAnyExcept(0f) < 0, "the terminated run wrote its output: it ran to its end");
    }

    [Fact]
    public void Disposal_releases_the_session()
    {
        var onnx = Open();
        onnx.Dispose();

        Assert.ThrowsAny<ObjectDisposedException>(() => onnx.Run([1L], new float[Dimensions]));
    }

    [Fact]
    public async Task Disposal_racing_with_runs_on_several_threads_never_breaks_a_run()
    {
        for (int round = 0; round < 20; round++)
        {
            var onnx = Open();
            var outcomes = Enumerable.Range(0, 4).Select(thread => Task.Run(() =>
            {
                var embeddings = new float[8 * Dimensions];
                long[] users = [.. Enumerable.Range(thread * 8, 8).Select(u => (long)u)];
                for (int i = 0; i < 50; i++)
                {
                    try
                    {
                        onnx.Run(users, embeddings);
                    }
                    catch (ObjectDisposedException)
                    {
                        return true; // disposed: every later run is refused, none crashes
                    }
                }

                return false;
            })).ToArray();
            await Task.Delay(round % 5);
            onnx.Dispose();
            await Task.WhenAll(outcomes).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Throws<ObjectDisposedException>(() => onnx.Run([1L], new float[Dimensions]));
        }
    }
}
