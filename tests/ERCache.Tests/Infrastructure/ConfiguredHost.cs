using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>A service provider configured from an appsettings file the test can rewrite and reload.</summary>
internal sealed class ConfiguredHost : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"ercache-{Guid.NewGuid():N}.json");

    /// <param name="json">The appsettings file's text.</param>
    /// <param name="register">Registers the models' inference; a <see cref="TestTower"/> per configured model when
    /// null.</param>
    /// <param name="source">Another configuration source, read after the file.</param>
    public ConfiguredHost(string json, Action<IERCacheBuilder>? register = null, IConfigurationSource? source = null)
    {
        File.WriteAllText(_path, json);
        var configuration = new ConfigurationBuilder().AddJsonFile(_path, optional: false, reloadOnChange: false);
        if (source is not null)
        {
            configuration.Add(source);
        }

        Configuration = configuration.Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(Configuration);
        services.AddSingleton<TimeProvider>(Clock);
        services.AddFakeLogging();
        var builder = services.AddERCache();
        if (register is null)
        {
            foreach (var model in Configuration.GetSection("ERCache:Models").GetChildren())
            {
                var tower = new TestTower();
                Towers[model.Key] = tower;
                builder.AddModel(model.Key, tower);
            }
        }
        else
        {
            register(builder);
        }

        Services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    public FakeTimeProvider Clock { get; } = new();

    public IConfigurationRoot Configuration { get; }

    public ServiceProvider Services { get; }

    public Dictionary<string, TestTower> Towers { get; } = [];

    public EmbeddingCache Cache => Services.GetRequiredService<EmbeddingCache>();

    /// <summary>What the cache logged.</summary>
    public FakeLogCollector Logs => Services.GetFakeLogCollector();

    /// <summary>Rewrites the file and reloads configuration (raising the options change).</summary>
    public void Reload(string json)
    {
        File.WriteAllText(_path, json);
        Configuration.Reload();
    }

    public void Dispose()
    {
        Services.Dispose();
        File.Delete(_path);
    }

    public static string Json(string models) => $$"""{ "ERCache": { "Models": { {{models}} } } }""";

    public static string Model(string name, int dimensions = 4, string version = "v1", string directTtl = "00:01:00", string failoverTtl = "01:00:00", int capacity = 100, string directEviction = "Lru") =>
        $$"""
        "{{name}}": {
          "Dimensions": {{dimensions}}, "Version": "{{version}}",
          "Inference": { "Timeout": "00:00:00.050", "MaxBatchSize": 16, "MaxConcurrency": 4 },
          "Direct": { "Ttl": "{{directTtl}}", "Capacity": {{capacity}}, "Eviction": "{{directEviction}}", "Format": "Float32" },
          "Failover": { "Ttl": "{{failoverTtl}}", "Capacity": {{capacity}}, "Eviction": "Fifo", "Format": "Float32" }
        }
        """;
}
