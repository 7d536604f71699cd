using System.Diagnostics;
using ERCache.Diagnostics;
using ERCache.OnnxRuntime;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using System.Numerics.Tensors;
using System.Text.Json.Serialization;
using ERCache.Inference;
using ERCache.Testing;

namespace ERCache.Samples.RankingService;

/// <summary>The service's own settings (<c>RankingService</c> section).</summary>
public sealed class RankingServiceOptions
{
    /// <summary>Most candidate items one request may carry.</summary>
    public int MaxItems { get; set; } = 1000;

    /// <summary>The fault switch: share of inference calls that fail, and added model latency.</summary>
    public double FailureRate { get; set; }

    /// <summary>Median added latency per inference call, milliseconds (log-normal). 0: none.</summary>
    public double LatencyMs { get; set; }

    /// <summary>Extra CPU time each tower spends per user, microseconds (a heavier model than the sample's own; the
    /// load test's capacity search sets it so the towers, not HTTP, bound the service). 0: none.</summary>
    public double TowerCpuMicrosecondsPerUser { get; set; }

    /// <summary>Users each tower computes at start-up, before traffic, to have the JIT compile it.</summary>
    public int WarmupUsers { get; set; } = TowerWarmup.DefaultUsers;
}

/// <summary>Every model's user tower, each behind the fault-injection wrapper the configuration switches.</summary>
public sealed class TowerRegistry : IDisposable
{
    private readonly Dictionary<string, (UserTower Tower, FaultInjectingInference Faulty)> _models = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<IDisposable> _sessions = [];
    private int _warmupUsers;

    public TowerRegistry(IConfiguration configuration, TimeProvider time, IHostEnvironment environment)
    {
        var options = configuration.GetSection("RankingService").Get<RankingServiceOptions>() ?? new RankingServiceOptions();
        int seed = 1;
        foreach (var (name, dimensions, onnxPath) in ModelsOf(configuration))
        {
            var tower = CreateTower(name, dimensions, seed, onnx: onnxPath is not null);
            tower.ExtraCpuPerUser = TimeSpan.FromTicks((long)(options.TowerCpuMicrosecondsPerUser * 10));
            if (onnxPath is not null)
            {
                // The same weights, exported to ONNX (OnnxTowerExport): batches run on ONNX Runtime through the adapter.
                var onnx = new OnnxEmbeddingInference(name, dimensions, new OnnxModelOptions { Path = Path.Combine(environment.ContentRootPath, onnxPath) }, UserTower.Featurize);
                _sessions.Add(onnx);
                tower.RunOn(onnx);
            }

            var faults = new FaultSettings
            {
                ErrorRate = options.FailureRate,
                Latency = options.LatencyMs > 0 ? FaultSettings.LogNormal(TimeSpan.FromMilliseconds(options.LatencyMs), 0.5) : null,
            };
            _models[name] = (tower, new FaultInjectingInference(tower, faults, time, seed));
            ItemSeeds[name] = seed++;
        }
    }

    /// <summary>The configured models in seed order: name, dimensions, and the ONNX file when the model has one.</summary>
    public static IEnumerable<(string Name, int Dimensions, string? OnnxPath)> ModelsOf(IConfiguration configuration) =>
        configuration.GetSection("ERCache:Models").GetChildren()
            .OrderBy(m => m.Key, StringComparer.Ordinal)
            .Select(m => (m.Key, m.GetValue<int>("Dimensions"), m["Onnx:Path"]));

    /// <summary>The tower of the <paramref name="seed"/>-th model (1-based, in name order); narrower when exported to
    /// ONNX, so the committed file stays small.</summary>
    public static UserTower CreateTower(string name, int dimensions, int seed, bool onnx) =>
        new(name, dimensions, seed: 1000 + seed, hidden: onnx ? UserTower.OnnxHidden : UserTower.Hidden);

    public void Dispose()
    {
        foreach (var session in _sessions)
        {
            session.Dispose();
        }
    }

    /// <summary>The seed of each model's item embeddings.</summary>
    public Dictionary<string, int> ItemSeeds { get; } = new(StringComparer.OrdinalIgnoreCase);

    public UserTower Tower(string model) => _models[model].Tower;

    /// <summary>The inference the cache calls: the tower behind the fault switch (which can be flipped at run time).</summary>
    public FaultInjectingInference Inference(string model) => _models[model].Faulty;

    public IEnumerable<string> Models => _models.Keys;

    /// <summary>Users computed by the start-up warm-up, over all towers (not counted in the towers' statistics).</summary>
    public int WarmupUsers => Volatile.Read(ref _warmupUsers);

    internal void RecordWarmup(int users) => Interlocked.Add(ref _warmupUsers, users);
}

/// <summary>Builds the ranking service: ERCache configured from appsettings, one user tower per model, two endpoints.</summary>
public static class RankingServiceApp
{
    /// <param name="args">Command-line arguments (configuration overrides such as <c>--RankingService:FailureRate=0.2</c>).</param>
    /// <param name="overrides">Configuration values laid over appsettings.json (the load test scales TTLs this way).</param>
    /// <param name="contentRoot">Where appsettings.json is; the current directory when null.</param>
    public static WebApplication Create(string[] args, IReadOnlyDictionary<string, string?>? overrides = null, string? contentRoot = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = contentRoot });
        if (overrides is not null)
        {
            builder.Configuration.AddInMemoryCollection(overrides);
        }

        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new JsonStringEnumConverter()));
        builder.Services.AddSingleton<TowerRegistry>();
        foreach (var model in builder.Configuration.GetSection("ERCache:Models").GetChildren())
        {
            builder.Services.AddKeyedSingleton<IEmbeddingInference>(model.Key, (sp, key) => sp.GetRequiredService<TowerRegistry>().Inference((string)key!));
        }

        // Binds and validates ERCache:Models, failing start-up on bad configuration; each model's Onnx subsection is read
        // by the TowerRegistry, so it is declared as the application's own.
        var ercache = builder.Services.AddERCache().AddModelSection("Onnx");
        if (!string.IsNullOrWhiteSpace(builder.Configuration["ERCache:Regional:ConnectionString"]))
        {
            ercache.AddRedisRegionalTier(); // hosts of a region share embeddings through Redis or Garnet
        }

        // Operations: ERCache's meter and traces through OpenTelemetry (Prometheus scrapes GET /metrics; with
        // OpenTelemetry:OtlpEndpoint set, traces and metrics also go to an OTLP collector), and the health check.
        var telemetry = builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics.AddMeter(ERCacheDiagnostics.MeterName).AddPrometheusExporter());
        if (builder.Configuration["OpenTelemetry:OtlpEndpoint"] is { Length: > 0 } otlp)
        {
            telemetry.WithTracing(tracing => tracing.AddSource(ERCacheDiagnostics.ActivitySourceName).AddOtlpExporter(o => o.Endpoint = new Uri(otlp)))
                .WithMetrics(metrics => metrics.AddOtlpExporter(o => o.Endpoint = new Uri(otlp)));
        }

        builder.Services.AddHealthChecks().AddERCache(configure: o => o.FallbackShareThreshold = 0.05);

        builder.Services.AddSingleton<ERCacheStats>();
        builder.Services.AddHostedService<TowerWarmup>(); // before Kestrel listens: the first requests find compiled towers

        var app = builder.Build();
        app.Services.GetRequiredService<ERCacheStats>(); // listen from the first request on
        app.MapGet("/", () => "ERCache ranking service: POST /rank, DELETE /users/{id}, GET /stats, GET /metrics (Prometheus), GET /health");
        app.MapPrometheusScrapingEndpoint(); // GET /metrics
        app.MapHealthChecks("/health");
        app.MapPost("/rank", RankAsync);
        app.MapDelete("/users/{userId:long}", async (long userId, EmbeddingCache cache, CancellationToken cancellationToken) =>
        {
            // A user's deletion request: returns once no tier here or in the store holds the user and the other hosts
            // have been told (their copies go when they apply it).
            await cache.RemoveAsync(userId, cancellationToken);
            return new RemovalResponse(userId, Stopwatch.GetTimestamp());
        });
        app.MapGet("/stats", (ERCacheStats stats, TowerRegistry towers) => new StatsResponse(
            stats.Snapshot(),
            towers.Models.ToDictionary(m => m, m => new TowerStats(towers.Tower(m).Users, towers.Tower(m).ComputeTime.TotalMilliseconds)),
            stats.LastInvalidationApplied));
        return app;
    }

    private static async Task<IResult> RankAsync(RankRequest request, EmbeddingCache cache, TowerRegistry towers, IConfiguration configuration, CancellationToken cancellationToken)
    {
        int maxItems = configuration.GetValue("RankingService:MaxItems", 1000);
        if (request.Items is not { Length: > 0 } items || items.Length > maxItems)
        {
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["items"] = [$"Give 1 to {maxItems} candidate item ids (got {request.Items?.Length ?? 0})."] });
        }

        if (request.K < 1)
        {
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["k"] = [$"k must be at least 1 (got {request.K})."] });
        }

        // Every model's embedding at once: hits return synchronously, misses share their models' batches.
        var models = cache.Models.Order(StringComparer.Ordinal).ToArray();
        var embeddings = models.Select(m => new float[cache.GetPolicy(m).Dimensions]).ToArray();
        var pending = models.Select((m, i) => cache.GetAsync(m, request.UserId, embeddings[i], cancellationToken).AsTask()).ToArray();
        var results = await Task.WhenAll(pending);

        var scores = new float[items.Length];
        for (int m = 0; m < models.Length; m++)
        {
            if (!results[m].HasVector)
            {
                continue; // a fallback without a default vector contributes nothing
            }

            var item = new float[embeddings[m].Length];
            int seed = towers.ItemSeeds[models[m]];
            for (int i = 0; i < items.Length; i++)
            {
                ItemEmbeddings.Fill(seed, items[i], item);
                scores[i] += TensorPrimitives.Dot(embeddings[m], item);
            }
        }

        var top = Enumerable.Range(0, items.Length)
            .OrderByDescending(i => scores[i]).ThenBy(i => items[i])
            .Take(request.K)
            .Select(i => new RankedItem(items[i], scores[i]))
            .ToArray();
        var sources = models.Select((m, i) => (m, r: results[i])).ToDictionary(
            p => p.m,
            p => new ModelEmbedding(p.r.Source, p.r.Age.TotalMilliseconds, p.r.FailureCause, p.r.ModelVersion));
        return Results.Ok(new RankResponse(request.UserId, top, sources));
    }
}
