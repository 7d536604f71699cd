using ERCache.Samples.RankingService;

// dotnet run --project samples/ERCache.Samples.RankingService    (listens on http://127.0.0.1:5080)
// dotnet run --project samples/ERCache.Samples.RankingService -- --export-onnx cvr    (rewrites models/cvr_user_tower.onnx)
if (args is ["--export-onnx", var model])
{
    var configuration = new ConfigurationBuilder().SetBasePath(Directory.GetCurrentDirectory()).AddJsonFile("appsettings.json").Build();
    var models = TowerRegistry.ModelsOf(configuration).ToList();
    int index = models.FindIndex(m => m.Name == model);
    if (index < 0 || models[index].OnnxPath is not { } path)
    {
        Console.Error.WriteLine($"Model '{model}' has no ERCache:Models:{model}:Onnx:Path in appsettings.json.");
        return 1;
    }

    var tower = TowerRegistry.CreateTower(model, models[index].Dimensions, index + 1, onnx: true);
    File.WriteAllBytes(path, OnnxTowerExport.Write(tower));
    Console.WriteLine($"Wrote {path} ({new FileInfo(path).Length:N0} bytes): {model}, 64 features -> {tower.HiddenWidth} -> {tower.HiddenWidth} -> {tower.Dimensions}.");
    return 0;
}

await RankingServiceApp.Create(args).RunAsync();
return 0;

/// <summary>The entry point, visible to <c>WebApplicationFactory</c> in the integration tests.</summary>
public partial class Program;
