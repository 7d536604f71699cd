using ERCache.Inference;
using ERCache.Samples.RankingService;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ERCache.OnnxRuntime.Tests;

/// <summary><c>AddOnnxModel</c>: from a path or from <c>ERCache:Models:&lt;name&gt;:Onnx</c>, checked at host start.</summary>
public sealed class DependencyInjectionTests
{
    private static IHost Build(Dictionary<string, string?> onnx, Action<IERCacheBuilder> register, string section = "ERCache")
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        var keys = new Dictionary<string, string?>
        {
            [$"{section}:Models:cvr:Dimensions"] = "64",
            [$"{section}:Models:cvr:Direct:Ttl"] = "00:01:00",
            [$"{section}:Models:cvr:Failover:Ttl"] = "01:00:00",
        };
        foreach (var (key, value) in onnx)
        {
            keys[$"{section}:Models:cvr:Onnx:{key}"] = value;
        }

        builder.Configuration.AddInMemoryCollection(keys);
        register(builder.Services.AddERCache(section));
        return builder.Build();
    }

    [Fact]
    public async Task The_Onnx_section_is_read_under_the_section_the_cache_was_added_with()
    {
        using var host = Build(new() { ["Path"] = "models/cvr_user_tower.onnx" }, b => b.AddOnnxModel("cvr", UserTower.Featurize), section: "Ranking");
        await host.StartAsync();

        var result = await host.Services.GetRequiredService<IEmbeddingCache>().GetAsync("cvr", 42, new float[64]);

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_model_configured_with_an_Onnx_section_serves_the_reference_vectors()
    {
        using var host = Build(new() { ["Path"] = "models/cvr_user_tower.onnx", ["IntraOpThreads"] = "1", ["OptimizationLevel"] = "ORT_ENABLE_BASIC" }, b => b.AddOnnxModel("cvr", UserTower.Featurize));
        await host.StartAsync();
        var cache = host.Services.GetRequiredService<IEmbeddingCache>();
        var vector = new float[64];
        var expected = new float[64];

        var first = await cache.GetAsync("cvr", 42, vector);
        OnnxEmbeddingInferenceTests.Reference().Compute(42, expected);
        var second = await cache.GetAsync("cvr", 42, vector);

        Assert.Equal(EmbeddingSource.Fresh, first.Source);
        Assert.Equal(EmbeddingSource.Direct, second.Source);
        Assert.All(expected.Zip(vector), p => Assert.Equal(p.First, p.Second, 1e-4f));
        await host.StopAsync();
    }

    [Fact]
    public async Task The_session_is_disposed_with_the_container()
    {
        var host = Build([], b => b.AddOnnxModel("cvr", "models/cvr_user_tower.onnx", UserTower.Featurize));
        await host.StartAsync();
        var onnx = (OnnxEmbeddingInference)host.Services.GetRequiredKeyedService<IEmbeddingInference>("cvr");
        await host.StopAsync();

        host.Dispose();

        Assert.Throws<ObjectDisposedException>(() => onnx.Run([1L], new float[64]));
    }

    [Fact]
    public async Task A_wrong_output_shape_fails_host_start_naming_the_model()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ERCache:Models:cvr:Dimensions"] = "32",
            ["ERCache:Models:cvr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:cvr:Failover:Ttl"] = "01:00:00",
        });
        builder.Services.AddERCache().AddOnnxModel("cvr", "models/cvr_user_tower.onnx", UserTower.Featurize);
        using var wrong = builder.Build();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => wrong.StartAsync());

        Assert.Contains("'cvr': output 'embedding' has shape [batch, 64], expected [batch, 32]", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Pth", "models/cvr_user_tower.onnx", "ERCache:Models:cvr:Onnx does not bind")]
    [InlineData("Input", "x", "ERCache:Models:cvr:Onnx:Path is not set")]
    public async Task A_bad_Onnx_section_fails_host_start_naming_the_section(string key, string value, string message)
    {
        using var host = Build(new() { [key] = value }, b => b.AddOnnxModel("cvr", UserTower.Featurize));

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IntraOpThreads_of_zero_fails_host_start_naming_the_setting()
    {
        using var host = Build(new() { ["Path"] = "models/cvr_user_tower.onnx", ["IntraOpThreads"] = "0" }, b => b.AddOnnxModel("cvr", UserTower.Featurize));

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains("ERCache:Models:cvr:Onnx:IntraOpThreads must be positive (got 0)", ex.Message, StringComparison.Ordinal);
    }
}
