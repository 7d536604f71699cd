using ERCache.Samples.RankingService;

// dotnet run --project samples/ERCache.Samples.RankingService    (listens on http://127.0.0.1:5080)
await RankingServiceApp.Create(args).RunAsync();

/// <summary>The entry point, visible to <c>WebApplicationFactory</c> in the integration tests.</summary>
public partial class Program;
